"""A loss-only line, ``lp.slice(measure="loss")``, against ``loss_landscapes.random_line`` on the 16-layer sample.

Printed, each as the median (min–max) over ``--repeats`` repeats whose order
rotates (no run always goes first), single-threaded (``torch.set_num_threads(1)``;
set ``OMP_NUM_THREADS=1`` yourself too), with the load average:

- the floor: ``--points`` bare forward passes and losses on the probe set (``torch.no_grad``);
- ``lp.slice(model, (x, y), direction="random", measure="loss", scaling="filter")`` at ``--points``
  scales, the whole call (probe set checks, direction, provenance included);
- ``loss_landscapes.random_line`` with filter normalisation and the same number of points
  (``deepcopy_model=True``, as our call leaves the model as it was); its ``Loss`` metric computes
  the loss only, ours also accuracy, the relative function change and KL.

Then the values: loss-landscapes' ``linear_interpolation`` from W to an end model
W + u, u our filter-normalised random direction (as ``benchmarks/landscape.py`` does
for the plane), against our line at t = k / points, k = 1 … points; the largest
relative difference of the losses is printed (float32: the peer accumulates its
steps, W + u/P + u/P + …, so a few ulps apart is expected).

Run: ``OMP_NUM_THREADS=1 python benchmarks/line.py [--points 51] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from landscape import print_against_floor_and_peer, rotated_times, sample_problem

import landscape_probe as lp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=51)
    parser.add_argument("--probe-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model, x, y = sample_problem(args.probe_size)
    scales = [k / args.points for k in range(1, args.points + 1)]
    try:
        import loss_landscapes
        import loss_landscapes.metrics
    except ImportError:
        loss_landscapes = None

    def floor() -> None:
        with torch.no_grad():
            for _ in range(args.points):
                float(torch.nn.functional.cross_entropy(model(x), y))

    def ours() -> None:
        lp.slice(model, (x, y), direction="random", measure="loss", scaling="filter", scales=scales, device="cpu",
                 probe_size=args.probe_size)

    def peer() -> None:
        metric = loss_landscapes.metrics.Loss(torch.nn.functional.cross_entropy, x, y)
        loss_landscapes.random_line(model, metric, distance=1, steps=args.points, normalization="filter",
                                    deepcopy_model=True)

    runs = {"floor": floor, "lp.slice(measure=loss)": ours}
    if loss_landscapes is not None:
        runs["loss_landscapes.random_line"] = peer
    ours()  # warm-up: first-call imports and allocations are not what is compared
    times = rotated_times(runs, args.repeats)
    header = f"16-layer sample, {args.probe_size} probe examples, {args.points} points"
    if print_against_floor_and_peer(times, header, "lp.slice(measure=loss)", "loss_landscapes.random_line", "≤ 1.2"):
        _compare_values(model, x, y, loss_landscapes, scales)


def _compare_values(model, x, y, loss_landscapes, scales: list[float]) -> None:
    """Our line and loss-landscapes' linear_interpolation toward W + u, u our direction, at the same points."""
    from landscape_probe.params import select_layers
    from landscape_probe.slicing import directions

    names = select_layers(model)
    base = {k: v.detach() for k, v in model.named_parameters() if k in names}
    unit = directions.unit_step(directions.random_direction(base, 0), base, "filter", "frobenius")
    end = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in end.named_parameters():
            if name in unit:
                param.add_(unit[name])
    metric = loss_landscapes.metrics.Loss(torch.nn.functional.cross_entropy, x, y)
    theirs = loss_landscapes.linear_interpolation(model, end, metric, steps=len(scales), deepcopy_model=True)
    ours = lp.slice(model, (x, y), direction="random", measure="loss", scaling="filter", scales=scales,
                    device="cpu", seed=0, probe_size=len(x)).loss
    worst = float(np.max(np.abs(theirs - ours) / np.abs(ours)))
    print(f"  values, {len(scales)} points, same direction: largest relative difference of the loss {worst:.2e} "
          "(target ≤ 1e-5)")


if __name__ == "__main__":
    main()
