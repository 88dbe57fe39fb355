"""Does evaluating several slice points per pass pay? The slice's own two ways, timed side by side.

Issue 8, target 4. On the 16-layer sample (probe set 512), K points
W + t_k·u, each needing the outputs, the loss and the gradient over the
perturbed layers, computed the two ways ``probe slice`` can
(``landscape_probe/slicing/batched_points.py``):

- one at a time: ``ProbeEvaluator.evaluate`` per point (``--points-per-pass 1``,
  what ``auto`` does on a CPU);
- batched: ``evaluate_points``, one vmapped forward pass and one backward
  pass for all K (``--points-per-pass K``; K copies of the weights and K sets
  of activations).

Printed for K in ``--points``: both times as median (min–max) over ``--repeats``
interleaved repeats, and one-at-a-time / batched (above 1: batching pays), plus
the largest relative difference of the batched losses and gradients from the
one-at-a-time ones. On a CUDA device both are synchronised. The whole slice,
one per pass against 8, is a target-4 row of ``benchmarks/run.py``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/batched_points.py [--device auto] [--repeats 5]``.
"""

from __future__ import annotations

import argparse

import torch
from landscape import figure, load_average, rotated_times, sample_problem

from landscape_probe.devices import resolve_device
from landscape_probe.params import flatten, select_layers, unflatten
from landscape_probe.slicing.batched_points import evaluate_points
from landscape_probe.slicing.evaluator import ProbeEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="4,8,21", help="comma-separated K")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model, x, y = sample_problem(512)
    model, x, y = model.to(device), x.to(device), y.to(device)
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", select_layers(model))
    step = torch.randn(evaluator.flat_base.shape, generator=torch.Generator().manual_seed(0)).to(device) * 1e-2

    def stacked(evaluations: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The points' losses and flat gradients, one row per point."""
        return torch.stack([at.loss for at in evaluations]), torch.stack([flatten(at.gradient) for at in evaluations])

    def one_at_a_time(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return stacked([evaluator.evaluate(unflatten(point, evaluator.base)) for point in points])

    def batched(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return stacked(evaluate_points(evaluator, points))

    def synchronised(fn, points):
        def run() -> None:
            fn(points)
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    print(f"16-layer sample, probe set 512, on {device}, 1 thread, load average {load_average()}")
    for count in (int(k) for k in args.points.split(",")):
        points = evaluator.flat_base + torch.linspace(0.1, 1.0, count, device=device)[:, None] * step
        (loss_a, grad_a), (loss_b, grad_b) = one_at_a_time(points), batched(points)  # also the warm-up
        times = rotated_times({"one at a time": synchronised(one_at_a_time, points),
                               "batched": synchronised(batched, points)}, args.repeats)
        difference = max(float(((loss_b - loss_a).abs() / loss_a.abs()).max()),
                         float(((grad_b - grad_a).norm(dim=1) / grad_a.norm(dim=1)).max()))
        ratios = [a / b for a, b in zip(times["one at a time"], times["batched"], strict=True)]
        print(f"  K = {count:>3}: one at a time {figure(times['one at a time'], '.3g')} s, batched "
              f"{figure(times['batched'], '.3g')} s, one at a time / batched {figure(ratios, '.3g')}; "
              f"largest relative difference {difference:.1e}")


if __name__ == "__main__":
    main()
