"""A GPT-2-small-sized model sliced on the GPU: time against the bare GPU floor, peak memory against parameter bytes.

The model is the zoo's transformer at GPT-2-small size (d_model 768, 12 heads,
feed-forward 3072; ``--depth`` blocks, 17 by default, ≈ 121 M parameters: GPT-2
small has 85 M in its blocks and 39 M in its token embedding, which this
encoder has no counterpart for, so more blocks stand in for it). The probe set
is synthetic: ``--probe-size`` sequences of ``--seq-len`` tokens.

Printed, each as the median (min–max) over ``--repeats`` interleaved repeats:
- ``lp.slice`` at 21 points, ``--layers`` off, against the floor: 21 bare
  forward+backward passes of the same model on the same probe set (what any
  slice must do at least once per point), both synchronised;
- peak GPU memory of the slice against the parameter bytes.
The slice runs with its default ``--points-per-pass auto``, which on a GPU
evaluates as many points per pass as ``--memory-budget`` (1 GiB) holds; the
table prints the number it chose (at this size one point's copies alone pass
the budget, so 1). ``benchmarks/batched_points.py --device cuda`` times
batching itself.

Run on a GPU machine: ``python benchmarks/gpu_slice.py [--depth 17] [--repeats 3]``;
``--out FILE`` also writes the table as markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from landscape import figure as _figure

import landscape_probe as lp
from landscape_probe.models.zoo import build_model


def _synchronised(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=17)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--probe-size", type=int, default=32)
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("This benchmark needs a CUDA GPU.")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model_args = {"name": "transformer", "input_shape": [args.seq_len, 16], "num_outputs": 10, "d_model": 768,
                  "depth": args.depth, "heads": 12, "ff_width": 3072}
    model = build_model(model_args).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.probe_size, args.seq_len * 16, generator=generator).to(device)
    y = torch.randint(0, 10, (args.probe_size,), generator=generator).to(device)

    def floor() -> None:
        for _ in range(args.points):
            model.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
        model.zero_grad(set_to_none=True)

    def sliced() -> lp.SliceResult:
        return lp.slice(model, (x, y), points=args.points, max_scale=0.1, device="cuda", probe_size=args.probe_size)

    _synchronised(floor)
    lp.slice(model, (x, y), points=3, max_scale=0.1, device="cuda", probe_size=args.probe_size)
    floors, slices, peaks = [], [], []
    result = None
    for _ in range(args.repeats):
        floors.append(_synchronised(floor))
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        start = time.perf_counter()
        result = sliced()
        torch.cuda.synchronize()
        slices.append(time.perf_counter() - start)
        peaks.append((torch.cuda.max_memory_allocated() - baseline) / parameter_bytes)
    ratios = [s / f for s, f in zip(slices, floors, strict=True)]
    rows = [
        ("device", torch.cuda.get_device_name(), ""),
        ("model", f"transformer d768 h12 ff3072 depth {args.depth}", f"{parameters / 1e6:.1f} M parameters"),
        ("probe set", f"{args.probe_size} × {args.seq_len} tokens", "float32"),
        (f"bare floor: {args.points} forward+backward (s)", _figure(floors), "1.00×"),
        (f"lp.slice, {args.points} points (s)", _figure(slices), f"{_figure(ratios)}× the floor"),
        ("λ_max power iterations (at most)", f"{result.config.power_iterations}", f"λ_max = {result.lambda_max:.4g}"),
        ("peak GPU memory above the model / parameter bytes", _figure(peaks), f"{parameter_bytes / 2**20:.0f} MiB"),
        ("points per pass (auto)", f"{result.config.points_per_pass}", "batching: benchmarks/batched_points.py"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<28} {note}")
    if args.out:
        lines = ["| what | value | note |", "| --- | --- | --- |", *(f"| {n} | {v} | {o} |" for n, v, o in rows)]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
