"""How long ``probe --help`` takes to start, against ``import typer`` alone (issue 8: ``--help`` start-up).

Fresh processes of one interpreter, run one after another in rotated order in
each repeat, single-threaded, output thrown away:

- ``python -c "import typer"``: the floor, what any typer CLI pays;
- ``python -m landscape_probe --help``: the top-level help (target ≤ 1.5 × the floor);
- ``python -m landscape_probe``: bare ``probe``, which prints the same help;
- ``python -m landscape_probe slice --help``: one command's full rich help, for comparison.

Printed: each command's wall time and CPU time (user + system) as the median
(min–max), the ratios of the medians to the floor, and the load average
before and after. The package is taken from this checkout (``PYTHONPATH``),
with its bytecode cached as an installed package's is: the processes may write
``__pycache__`` (``PYTHONDONTWRITEBYTECODE`` is dropped) and one untimed round
runs first.

Run: ``python benchmarks/startup.py [--repeats 15] [--python /path/to/python]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from landscape import figure, load_average

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "import typer": ["-c", "import typer"],
    "probe --help": ["-m", "landscape_probe", "--help"],
    "probe": ["-m", "landscape_probe"],
    "probe slice --help": ["-m", "landscape_probe", "slice", "--help"],
}
EXIT_CODES = {"probe": 2}  # bare probe prints the help and exits with 2; every other command with 0
FLOOR = "import typer"


def timed_run(command: list[str], env: dict[str, str], exit_code: int = 0) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, from the children's resource usage) of one fresh process.

    A process that ends with another exit code stops the benchmark: a traceback is no fast start-up.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False)
    wall = time.perf_counter() - start
    if finished.returncode != exit_code:
        raise SystemExit(f"{' '.join(command)} exited with {finished.returncode}, not {exit_code}:\n"
                         f"{finished.stderr.decode(errors='replace')}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--python", default=sys.executable, help="the interpreter of every process")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    names = list(COMMANDS)
    for name in names:
        timed_run([args.python, *COMMANDS[name]], env, EXIT_CODES.get(name, 0))
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    print(f"{args.python}, {args.repeats} rotated repeats; load average (1, 5, 15 min) before: {load_average()}")
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            wall, cpu = timed_run([args.python, *COMMANDS[name]], env, EXIT_CODES.get(name, 0))
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"load average after: {load_average()}\n")
    print(f"| {'command':<20} | wall s, median (min–max) | CPU s, median (min–max) | wall / floor | CPU / floor |")
    print("|---|---|---|---|---|")
    for name in names:
        wall_ratio = statistics.median(walls[name]) / statistics.median(walls[FLOOR])
        cpu_ratio = statistics.median(cpus[name]) / statistics.median(cpus[FLOOR])
        print(
            f"| {name:<20} | {figure(walls[name])} | {figure(cpus[name])} | {wall_ratio:.2f} | {cpu_ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
