"""``probe info`` and ``probe slice`` on a 100M-parameter model: time, peak memory, user vs kernel CPU (issue 8, target 5).

Builds a zoo MLP (default depth 8, width 4096, on the digits inputs: 64 in, 10
out, 101M parameters) with seed 0, saves it as a self-describing checkpoint in
a temporary folder (deleted afterwards, never committed), and runs each command
as a child process of its own, ``python -m landscape_probe ...``. Each child's
resource usage comes from ``os.wait4``: peak resident set size (``ru_maxrss``),
user and system CPU time, minor page faults. Peak RSS is given as a multiple of
the parameter bytes (numel × 4, float32); it includes the interpreter and
torch (0.2 GiB) and the loaded checkpoint, so it is an upper bound on what the
engine itself holds.

Commands timed:

- ``probe info CHECKPOINT --json``
- ``probe slice CHECKPOINT --probe-size P --points K --no-plots --device cpu -o OUT.h5``

Run (not in CI): ``OMP_NUM_THREADS=1 python benchmarks/big.py [--depth 8] [--width 4096]
[--probe-size 8] [--points 3] [--only info|slice] [--chunk-size N]``; it prints one
table. The thread count is whatever ``OMP_NUM_THREADS`` says (stated in the header).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_checkpoint(folder: Path, depth: int, width: int) -> tuple[Path, int]:
    """Write the zoo MLP to ``folder/big.pt``; return the path and the parameter count."""
    import torch

    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    torch.manual_seed(0)
    model_args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": depth, "width": width}
    model = build_model(model_args)
    path = folder / "big.pt"
    save_checkpoint(path, model, model_args, data={"name": "digits", "seed": 0, "test_fraction": 0.2})
    return path, sum(p.numel() for p in model.parameters())


def measure(command: list[str]) -> dict[str, float]:
    """Run ``command`` as a child; its wall time, peak RSS (bytes), user and system CPU seconds, minor faults."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    error = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed (status {status}):\n{error[-2000:]}")
    return {"wall": wall, "rss": usage.ru_maxrss * 1024, "user": usage.ru_utime, "system": usage.ru_stime,
            "faults": usage.ru_minflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--probe-size", type=int, default=8)
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None, help="passed to probe slice when given")
    parser.add_argument("--only", choices=("info", "slice"), default=None)
    args = parser.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="probe_big_") as tmp:
        folder = Path(tmp)
        checkpoint, numel = build_checkpoint(folder, args.depth, args.width)
        parameter_bytes = 4 * numel
        commands = {
            "info": [sys.executable, "-m", "landscape_probe", "info", str(checkpoint), "--json"],
            "slice": [sys.executable, "-m", "landscape_probe", "slice", str(checkpoint), "--probe-size",
                      str(args.probe_size), "--points", str(args.points), "--no-plots", "--device", "cpu",
                      "-o", str(folder / "slice.h5")]
            + ([] if args.chunk_size is None else ["--chunk-size", str(args.chunk_size)]),
        }
        rows = {name: measure(command) for name, command in commands.items() if args.only in (None, name)}
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"landscape_probe on a large model (benchmarks/big.py), started {stamp}")
    print(f"MLP depth {args.depth}, width {args.width}: {numel:,} parameters = {parameter_bytes / 2**30:.2f} GiB "
          f"(float32); probe set {args.probe_size}, {args.points} points"
          + ("" if args.chunk_size is None else f", --chunk-size {args.chunk_size}"))
    print(f"{platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"load average (1, 5, 15 min): before {', '.join(load_before)}, after {', '.join(load_after)}")
    print()
    print("| command | wall s | peak RSS GiB | peak RSS / parameter bytes | user s | system s | system / user | minor faults |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| probe {name} | {row['wall']:.1f} | {row['rss'] / 2**30:.2f} | {row['rss'] / parameter_bytes:.2f} | "
              f"{row['user']:.1f} | {row['system']:.1f} | {row['system'] / max(row['user'], 1e-9):.0%} | "
              f"{row['faults'] / 1e6:.2f} M |")


if __name__ == "__main__":
    main()
