"""Hessian-vector products: forward-over-reverse (torch.func jvp of grad) vs double backward.

Prints the time per HVP for each method on the sample 16-layer MLP and the
ratio, measured side by side in one process, plus the one-off cost of the
first call (torch.func's set-up). Run it on a quiet machine: with another process
busy on the same cores, OpenMP threads contend and times inflate tenfold. Run: ``python benchmarks/bench_hvp.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.curvature.hessian import hessian_vector_product, hessian_vector_product_forward_over_reverse
from landscape_probe.data.datasets import load_dataset_spec, probe_set
from landscape_probe.slicing.evaluator import ProbeEvaluator
from landscape_probe.params import select_layers

SAMPLE = Path(__file__).resolve().parent.parent / "sample_checkpoints" / "mlp16_digits.pt"


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(repeats: int = 20) -> None:
    torch.manual_seed(0)
    loaded = load_checkpoint(SAMPLE)
    x, y = probe_set(load_dataset_spec(loaded.data), 512, seed=0)
    evaluator = ProbeEvaluator(loaded.model, x, y, "cross_entropy", select_layers(loaded.model))
    vector = {k: torch.randn_like(v) for k, v in evaluator.base.items()}
    methods = {
        "jvp of grad (torch.func)": hessian_vector_product_forward_over_reverse,
        "double backward (autograd)": hessian_vector_product,
    }
    first, steady = {}, {}
    for name, method in methods.items():
        first[name] = _time(lambda m=method: m(evaluator.loss_fn, evaluator.base, vector), 1)
        steady[name] = _time(lambda m=method: m(evaluator.loss_fn, evaluator.base, vector), repeats)
    a, b = methods
    diff = max(
        float((hessian_vector_product_forward_over_reverse(evaluator.loss_fn, evaluator.base, vector)[k]
               - hessian_vector_product(evaluator.loss_fn, evaluator.base, vector)[k]).abs().max())
        for k in vector
    )
    print(f"model: {loaded.architecture}, probe set 512, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in methods:
        print(f"{name:28s} first call {first[name] * 1e3:8.1f} ms   steady {steady[name] * 1e3:8.2f} ms/HVP")
    print(f"steady ratio {a} / {b}: {steady[a] / steady[b]:.2f}")
    print(f"max |difference| between the two products: {diff:.2e}")


if __name__ == "__main__":
    main()
