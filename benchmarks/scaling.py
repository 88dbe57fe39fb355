"""1 process against 2 ``torchrun`` processes: a plane and a training sweep, the speed-up printed.

Each command is run whole, as a user runs it (``python -m landscape_probe ...`` against
``torchrun --standalone --nproc_per_node 2 -m landscape_probe ...``), so the times include
starting the interpreters, loading the checkpoint and data, the rendezvous, and rank 0
writing the results file; the speed-up is of what a user waits for. Every process gets
``OMP_NUM_THREADS=1`` (one core per rank: on a 2-core machine 2 ranks can at best halve the
time). Each pair is repeated ``--repeats`` times, alternating which goes first; the median
(min–max) wall time is printed, with the load average before and after (another job on the
machine makes both slower and the speed-up smaller).

- plane: ``probe plane`` of the 16-layer sample on a ``--grid``×``--grid`` grid with
  ``--measure gradient`` (every cell a forward and a backward pass; rows divided among ranks);
- sweep: ``probe train`` of sgd and fromage × seeds 0,1 (4 runs of a 4-layer MLP on digits,
  ``--epochs`` epochs each; runs divided among ranks);
- ceiling: a pure-Python loop run alone, then two copies at once: the speed-up two independent
  processes get on this machine at that moment (another job, or vCPUs that share a core, lower it);
- fixed cost: the same plane on a 2×2 grid, nearly all start, load, rendezvous and writing: what
  a job must outweigh before a second process pays. The other rows also print their speed-up with
  the fixed cost (median) taken off both times: an estimate of the work's own speed-up.

Run: ``python benchmarks/scaling.py [--grid 51] [--epochs 30] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], folder: Path) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    run = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True)
    took = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stderr[-3000:]}")
    return took


def launcher(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "landscape_probe"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m",
            "landscape_probe"]


def workloads(grid: int, epochs: int) -> dict[str, list[str]]:
    sample = str(ROOT / "sample_checkpoints" / "mlp16_digits.pt")

    def plane(points: int) -> list[str]:
        span = f"-1:1:{points}"
        return ["plane", sample, "--x", span, "--y", span, "--measure", "gradient", "--probe-size", "512",
                "--device", "cpu", "--no-plots", "-o", "plane.h5", "--overwrite"]

    return {
        "fixed cost (2×2 plane)": plane(2),
        f"plane {grid}×{grid}": plane(grid),
        f"sweep, 4 runs × {epochs} epochs": ["train", "--optimizer", "sgd", "--optimizer", "fromage", "--seeds", "0,1", "--depth", "4",
                  "--width", "64", "--epochs", str(epochs), "--diagnostics-every", "0", "--device", "cpu",
                  "--output", "sweep", "--overwrite", "--no-plots"],
    }


SPIN = "import time; t = time.perf_counter(); sum(range(30_000_000)); print(time.perf_counter() - t)"


def ceiling() -> float:
    """Twice one loop's time over the time two copies of it take at once."""
    alone = timed([sys.executable, "-c", SPIN], ROOT)
    started = time.perf_counter()
    both = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.DEVNULL) for _ in range(2)]
    for process in both:
        process.wait()
    return 2 * alone / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=51)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    print(f"ceiling: two independent processes at once run {ceiling():.2f}× as fast as one after the other")
    fixed: tuple[float, float] | None = None
    with tempfile.TemporaryDirectory() as folder:
        for name, command in workloads(args.grid, args.epochs).items():
            times: dict[int, list[float]] = {1: [], 2: []}
            for repeat in range(args.repeats):
                for processes in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                    times[processes].append(timed([*launcher(processes), *command], Path(folder)))
            one, two = statistics.median(times[1]), statistics.median(times[2])
            fixed = fixed or (one, two)  # the first workload is the fixed cost
            work = ("" if (one, two) == fixed or two <= fixed[1] else
                    f"; without the fixed cost {(one - fixed[0]) / (two - fixed[1]):.2f}×")
            print(f"{name}: 1 process {one:.1f} s ({min(times[1]):.1f}–{max(times[1]):.1f}), "
                  f"2 processes {two:.1f} s ({min(times[2]):.1f}–{max(times[2]):.1f}), speed-up {one / two:.2f}×"
                  + work)
    print(f"ceiling: {ceiling():.2f}×; load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
