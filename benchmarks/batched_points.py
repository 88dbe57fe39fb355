"""Would several slice points per pass pay? One point at a time against ``torch.func.vmap`` over K points.

Issue 8, target 4, asks for batched points "where it pays". This measured
the question, before they were built into the slice
(``landscape_probe/slicing/batched_points.py``, ``--points-per-pass``; the
whole slice, auto against 1, is a target-4 row of ``benchmarks/run.py``), on the 16-layer sample
(probe set 512): K points W + t_k·u, each needing the outputs, the loss and
the gradient over the perturbed layers, computed

- one at a time: ``functional_call`` forward and ``autograd.grad`` per point
  (what ``run_slice`` does with ``--points-per-pass 1``);
- batched: ``vmap(grad_and_value(...))`` over the K stacked weight vectors,
  one pass for all K (K copies of the weights and K sets of activations).

Printed for K in ``--points``: both times as median (min–max) over ``--repeats``
interleaved repeats, and one-at-a-time / batched (above 1: batching pays), plus
the largest relative difference of the batched losses and gradients from the
one-at-a-time ones. On a CUDA device both are synchronised.

Run: ``OMP_NUM_THREADS=1 python benchmarks/batched_points.py [--device auto] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
from landscape import rotated_times
from torch.func import functional_call, grad_and_value, vmap

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.data.datasets import load_dataset_spec, probe_set
from landscape_probe.devices import resolve_device
from landscape_probe.losses import loss_function
from landscape_probe.params import flatten, select_layers, unflatten

SAMPLE = Path(__file__).resolve().parent.parent / "sample_checkpoints" / "mlp16_digits.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="4,8,21", help="comma-separated K")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = resolve_device(args.device)
    loaded = load_checkpoint(SAMPLE)
    model = loaded.model.eval().to(device)
    x, y = (t.to(device) for t in probe_set(load_dataset_spec(loaded.data), 512, seed=0))
    names = select_layers(model)
    base = {n: p.detach() for n, p in model.named_parameters() if n in names}
    flat = flatten(base)
    step = torch.randn(flat.shape, generator=torch.Generator().manual_seed(0)).to(device) * 1e-2
    criterion = loss_function("cross_entropy")

    def at(flat_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = functional_call(model, unflatten(flat_weights, base), (x,))
        return criterion(outputs, y), outputs

    def one_at_a_time(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses, gradients = [], []
        for point in points:
            leaf = point.clone().requires_grad_(True)
            loss, _ = at(leaf)
            gradients.append(torch.autograd.grad(loss, leaf)[0])
            losses.append(loss.detach())
        return torch.stack(losses), torch.stack(gradients)

    def batched(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gradients, (losses, _) = vmap(grad_and_value(at, has_aux=True))(points)
        return losses, gradients

    def synchronised(fn, points):
        def run() -> None:
            fn(points)
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    print(f"16-layer sample, probe set 512, on {device}, 1 thread, "
          f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for count in (int(k) for k in args.points.split(",")):
        points = flat + torch.linspace(0.1, 1.0, count, device=device)[:, None] * step
        # also the warm-up: vmap's first call traces
        (loss_a, grad_a), (loss_b, grad_b) = one_at_a_time(points), (t.detach() for t in batched(points))
        times = rotated_times({"one at a time": synchronised(one_at_a_time, points),
                               "batched": synchronised(batched, points)}, args.repeats)
        difference = max(float(((loss_b - loss_a).abs() / loss_a.abs()).max()),
                         float(((grad_b - grad_a).norm(dim=1) / grad_a.norm(dim=1)).max()))
        ratios = [a / b for a, b in zip(times["one at a time"], times["batched"], strict=True)]
        print(f"  K = {count:>3}: one at a time {_figure(times['one at a time'])} s, batched "
              f"{_figure(times['batched'])} s, one at a time / batched {_figure(ratios)}; "
              f"largest relative difference {difference:.1e}")


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}–{max(values):.3g})"


if __name__ == "__main__":
    main()
