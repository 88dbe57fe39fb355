"""What share of a small ``probe slice`` process is spent drawing its figures.

Runs ``probe slice sample_checkpoints/mlp2_digits.pt --layers`` (or the
arguments given after ``--``) as a fresh process ``--repeats`` times and prints,
as the median (min–max), the process's wall time, the time inside
``slicing.plots.draw`` (reading the file, drawing and saving every figure) and
its share; the target of issue 8 is a share of at most 25 %. The load average
is printed: figures taken beside other work are noisy. Since ``probe`` imports
matplotlib in a background thread while it measures (``figures.prefetch``),
that import is mostly not inside ``draw`` any more; on this small sample the
process's total time did not change with it (5.28 s either way, median of 5
alternating runs, load 0.7), as the measurement holds the interpreter lock.

Run: ``OMP_NUM_THREADS=1 python benchmarks/plots_share.py [--repeats 5] [-- probe slice arguments]``.
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

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time
import landscape_probe.slicing.plots as plots
drawing = plots.draw
spent = [0.0]
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return drawing(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - start
plots.draw = timed
from landscape_probe.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(f"DRAW_SECONDS {spent[0]}", file=sys.stderr)
"""


def _figure(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):.3f}{unit} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("probe_args", nargs="*", default=["slice", "sample_checkpoints/mlp2_digits.pt", "--layers"])
    args = parser.parse_args()
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    totals, drawing = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            words = [*args.probe_args, "--device", "cpu", "-o", str(Path(scratch) / "s.h5")]
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, *words], cwd=ROOT, env=environment,
                                  capture_output=True, text=True)
            totals.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            drawing.append(float(done.stderr.rsplit("DRAW_SECONDS", 1)[1].split()[0]))
    shares = [100 * d / t for d, t in zip(drawing, totals, strict=True)]
    print(f"probe {' '.join(args.probe_args)}, {args.repeats} fresh processes, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  process   {_figure(totals, ' s')}")
    print(f"  figures   {_figure(drawing, ' s')}")
    print(f"  share     {_figure(shares, ' %')}  (target ≤ 25 %)")


if __name__ == "__main__":
    main()
