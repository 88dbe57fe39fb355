"""What ``probe train``'s records and diagnostics cost (issue 8, target 7).

Three ways to train the same model on the same batches, timed in rotated
repeats on one thread, each as the median (min–max):

- a bare loop: forward, backward, ``optimizer.step()``, nothing recorded;
- ``lp.train`` with ``diagnostics_every=0``: the per-step records only;
- ``lp.train`` with the default ``diagnostics_every=50``: also sharpness,
  gradient noise scale, own-step ratio and spectral shifts every 50 steps.

Printed: each time, and the ratios default / no diagnostics (target ≤ 1.5) and
no diagnostics / bare loop. Both ``lp.train`` runs include loading the data
set and building the model (a few ms); the bare loop is given them ready.

Run: ``OMP_NUM_THREADS=1 python benchmarks/training.py [--repeats 7] [--depth 4] [--epochs 5]``.
"""

from __future__ import annotations

import argparse

import torch
from landscape import figure, load_average, rotated_times

import landscape_probe as lp
from landscape_probe.data.datasets import load_dataset
from landscape_probe.models.zoo import MLP
from landscape_probe.optim.table import build_optimizer
from landscape_probe.training.loop import batch_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits")
    x, y = data.x_train, data.y_train
    batch = 64

    def bare() -> None:
        torch.manual_seed(0)
        model = MLP(x[0].numel(), 10, depth=args.depth, width=64)
        optimizer = build_optimizer("fromage", model, 0.01)
        for epoch in range(args.epochs):
            order = batch_order(len(x), 0, epoch)
            for start in range(0, len(x), batch):
                chosen = order[start : start + batch]
                loss = torch.nn.functional.cross_entropy(model(x[chosen]), y[chosen])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def train(every: int):
        return lambda: lp.train("mlp", "digits", depth=args.depth, epochs=args.epochs, batch_size=batch,
                                diagnostics_every=every, device="cpu")

    times = rotated_times({"bare loop": bare, "lp.train, no diagnostics": train(0),
                           "lp.train, default diagnostics": train(50)}, args.repeats)
    print(f"mlp depth {args.depth} width 64 on digits, {args.epochs} epochs of batch {batch}, fromage, 1 thread, "
          f"load average {load_average()}")
    for name, values in times.items():
        print(f"  {name:<32} {figure(values)} s")

    def ratio(a: str, b: str) -> str:
        return figure([p / q for p, q in zip(times[a], times[b], strict=True)], ".2f")

    print(f"  default diagnostics / none: {ratio('lp.train, default diagnostics', 'lp.train, no diagnostics')}"
          "  (target ≤ 1.5)")
    print(f"  no diagnostics / bare loop: {ratio('lp.train, no diagnostics', 'bare loop')}")


if __name__ == "__main__":
    main()
