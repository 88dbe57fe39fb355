"""lp.plane against the bare forward floor and against loss-landscapes, on the 16-layer sample.

Printed, each as the median (min–max) over ``--repeats`` interleaved repeats,
single-threaded (set ``OMP_NUM_THREADS=1`` yourself for the CPU; this script
also calls ``torch.set_num_threads(1)``):

- the floor: ``--steps``² bare forward passes of the model on the probe set
  (``torch.no_grad``), what any plane must do at least;
- ``lp.plane`` with ``measure="loss"`` on a ``--steps`` × ``--steps`` grid;
- ``loss_landscapes.random_plane`` with filter normalisation on the same grid
  size (the peer; install it with ``pip install "landscape_probe[bench]"``);
  a peer that is not installed is reported as such.

Then the values: loss-landscapes' ``planar_interpolation`` given our two
directions (as end models W + d₁, W + d₂) against our plane at the same
coordinates, the largest relative difference printed. Its grid walks each
row in place, and even rows sit one step further along d₂ than odd rows
(row i, column j is at j + 1 steps for even i and j steps for odd i); the
comparison follows that, and the figure is printed so that a reader can
check it.

Run: ``python benchmarks/landscape.py [--steps 51] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import landscape_probe as lp
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.data.datasets import load_dataset_spec, probe_set

SAMPLE = Path(__file__).resolve().parent.parent / "sample_checkpoints" / "mlp16_digits.pt"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def figure(values: list[float], spec: str = ".3f", width: str = "") -> str:
    """``median (min–max)`` of ``values``, each written with the format ``spec`` (the median padded to ``width``)."""
    return f"{statistics.median(values):{width}{spec}} ({min(values):{spec}}–{max(values):{spec}})"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, for the header of a benchmark's output."""
    import os

    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _figure(values: list[float]) -> str:
    return figure(values, width="8")


def sample_problem(probe_size: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The 16-layer sample in eval mode and its probe set, with torch on one thread."""
    torch.set_num_threads(1)
    loaded = load_checkpoint(SAMPLE)
    x, y = probe_set(load_dataset_spec(loaded.data), probe_size, seed=0)
    return loaded.model.eval(), x, y


def rotated_times(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of every run per repeat; each repeat starts with the next run, so that none always goes first."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for repeat in range(repeats):
        for name in order[repeat % len(order):] + order[: repeat % len(order)]:
            times[name].append(_timed(runs[name]))
    return times


def print_against_floor_and_peer(times: dict[str, list[float]], header: str, ours: str, peer: str,
                                 target: str) -> bool:
    """Print every run's time and its ratio to ``times["floor"]``, then ours over the peer's; False without a peer."""
    print(f"{header}, 1 thread, load average {load_average()}")
    for name, values in times.items():
        ratios = [v / f for v, f in zip(values, times["floor"], strict=True)]
        print(f"  {name:<30} {_figure(values)} s   {_figure(ratios)}× the floor")
    if peer not in times:
        print("  loss_landscapes: not installed (pip install 'landscape_probe[bench]'); no peer figures")
        return False
    ratios = [a / b for a, b in zip(times[ours], times[peer], strict=True)]
    print(f"  {ours} / {peer}: {_figure(ratios)}  (target {target})")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=51)
    parser.add_argument("--probe-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, x, y = sample_problem(args.probe_size)
    span = f"-1:1:{args.steps}"
    try:
        import loss_landscapes
        import loss_landscapes.metrics
    except ImportError:
        loss_landscapes = None

    def floor() -> None:
        with torch.no_grad():
            for _ in range(args.steps * args.steps):
                torch.nn.functional.cross_entropy(model(x), y)

    def ours() -> None:
        lp.plane(model, (x, y), x=span, y=span, device="cpu", probe_size=args.probe_size)

    def peer() -> None:
        metric = loss_landscapes.metrics.Loss(torch.nn.functional.cross_entropy, x, y)
        loss_landscapes.random_plane(model, metric, distance=1, steps=args.steps, normalization="filter",
                                     deepcopy_model=True)

    runs = {"floor": floor, "lp.plane": ours}
    if loss_landscapes is not None:
        runs["loss_landscapes.random_plane"] = peer
    times = rotated_times(runs, args.repeats)
    header = f"16-layer sample, {args.probe_size} probe examples, {args.steps}×{args.steps} grid"
    if print_against_floor_and_peer(times, header, "lp.plane", "loss_landscapes.random_plane", "≤ 1.0"):
        _compare_values(model, x, y, loss_landscapes, steps=9)


def _compare_values(model, x, y, loss_landscapes, steps: int) -> None:
    """Our plane and loss-landscapes' planar_interpolation, given the same directions, at the same points."""
    import copy

    from landscape_probe.curvature.hessian import gaussian_like
    from landscape_probe.params import select_layers
    from landscape_probe.slicing.directions import filter_normalize

    names = select_layers(model)
    base = {k: v.detach() for k, v in model.named_parameters() if k in names}
    d1, d2 = (filter_normalize(gaussian_like(base, seed), base) for seed in (0, 1))
    ends = []
    for direction in (d1, d2):
        end = copy.deepcopy(model)
        with torch.no_grad():
            for name, param in end.named_parameters():
                if name in direction:
                    param.add_(direction[name])
        ends.append(end)
    metric = loss_landscapes.metrics.Loss(torch.nn.functional.cross_entropy, x, y)
    theirs = loss_landscapes.planar_interpolation(model, ends[0], ends[1], metric, steps=steps, deepcopy_model=True)
    ours = lp.plane(model, (x, y), x=f"0:1:{steps + 1}", y=f"0:1:{steps + 1}", device="cpu", seed=0)
    worst = 0.0
    for i in range(steps):
        for j in range(steps):
            along_d2 = j + 1 if i % 2 == 0 else j
            mine = ours.loss[along_d2, i]
            worst = max(worst, abs(theirs[i, j] - mine) / abs(mine))
    print(f"  values, {steps}×{steps} points, same directions: largest relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
