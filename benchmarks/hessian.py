"""probe hessian's estimates against PyHessian's, side by side on the 16-layer sample.

On the 16 weight matrices of ``mlp16_digits.pt`` (probe set 512, float32,
single thread; set ``OMP_NUM_THREADS=1`` yourself, this script also calls
``torch.set_num_threads(1)``), each timed from the model to the numbers, the
gradient graph built inside the timing on both sides, over ``--repeats``
interleaved repeats:

- **top-5 eigenvalues**: our Lanczos (``top_eigenpairs``, full
  reorthogonalisation, stopping when every residual ||Hv − θv|| ≤ 1e-3·max|θ|)
  against PyHessian's ``eigenvalues(top_n=5, tol=1e-3)`` (deflated power
  iteration, stopping when the estimate changes by less than 1e-3 relative);
  both compared with a converged reference (Lanczos to 1e-10);
- **trace, 100 Rademacher samples**: our ``hutchinson_trace`` against
  PyHessian's ``trace(maxIter=100, tol=0)`` (tol = 0: it never stops early),
  the same number of products; the two estimates' difference is printed in
  units of our standard error;
- **density, one run of 60 Lanczos steps**: our ``stochastic_lanczos_quadrature``
  against PyHessian's ``density(iter=60, n_v=1)``. PyHessian 0.1's density
  calls ``torch.eig``, removed in torch 1.9; the script gives it back as
  ``torch.linalg.eigh`` of the (symmetric) tridiagonal matrix, which is what
  the old call computed for it.

Prints a markdown table of times and ratios (median, min–max) and writes it
to ``benchmarks/RESULTS-hessian.md``. Needs PyHessian (``pip install
"landscape_probe[bench]"``). Run: ``python benchmarks/hessian.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib
import os
import statistics
import time
import warnings
from pathlib import Path

import torch

from landscape_probe import params as P
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.curvature.hessian import GradientGraph, rademacher_like
from landscape_probe.curvature.spectrum import stochastic_lanczos_quadrature, top_eigenpairs
from landscape_probe.curvature.trace import hutchinson_trace
from landscape_probe.data.datasets import load_dataset_spec, probe_set
from landscape_probe.losses import loss_function
from landscape_probe.params import select_layers
from landscape_probe.slicing.evaluator import ProbeEvaluator

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "sample_checkpoints" / "mlp16_digits.pt"
TOP_K, TOLERANCE, TRACE_SAMPLES, DENSITY_STEPS = 5, 1e-3, 100, 60


def main(repeats: int) -> str:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")  # PyHessian's own call
    pyhessian = importlib.import_module("pyhessian.hessian")  # the module, not the class pyhessian/__init__ exports
    load_before = os.getloadavg()
    loaded = load_checkpoint(SAMPLE)
    model = loaded.model.eval()
    x, y = probe_set(load_dataset_spec(loaded.data), 512, seed=0)
    names = select_layers(model)
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", names)
    peer_model = copy.deepcopy(model)
    for name, p in peer_model.named_parameters():
        p.requires_grad_(name in names)  # PyHessian takes every parameter that requires grad: the same 16 matrices
    criterion = loss_function("cross_entropy")

    def graph() -> GradientGraph:
        return GradientGraph.at(evaluator.loss_fn, evaluator.base)

    def signs(offset: int):
        return lambda index: P.flatten(rademacher_like(evaluator.base, offset + index))

    def ours_top(r: int, tolerance: float = TOLERANCE):
        g = graph()
        restarts = iter(range(10**6))
        top = top_eigenpairs(g.flat_hessian_vector_product, signs(r)(0), k=TOP_K, iterations=200, tolerance=tolerance,
                             restart=lambda: signs(10**6)(next(restarts)))
        return top.eigenvalues.tolist(), top.products

    def peer(r: int):
        torch.manual_seed(r)
        return pyhessian.hessian(peer_model, criterion, data=(x, y), cuda=False)

    def peer_top(r: int):
        values, _ = peer(r).eigenvalues(maxIter=100, tol=TOLERANCE, top_n=TOP_K)
        return sorted(values, reverse=True), None

    def ours_trace(r: int):
        estimate = hutchinson_trace(graph().flat_hessian_vector_product, signs(1000 * r), max_samples=TRACE_SAMPLES,
                                    tolerance=0.0)
        return estimate.trace, estimate.standard_error

    def peer_trace(r: int):
        return statistics.fmean(peer(r).trace(maxIter=TRACE_SAMPLES, tol=0.0)), None

    def ours_density(r: int):
        runs = stochastic_lanczos_quadrature(graph().flat_hessian_vector_product, signs(5000 + r), runs=1,
                                             steps=DENSITY_STEPS)
        return float(torch.nan_to_num(runs.nodes, nan=-float("inf")).max()), None

    def peer_density(r: int):
        torch.eig = _removed_torch_eig  # PyHessian 0.1's density calls torch.eig, removed in torch 1.9
        eigenvalues, _ = peer(r).density(iter=DENSITY_STEPS, n_v=1)
        return max(eigenvalues[0]), None

    tasks = {"ours top": ours_top, "peer top": peer_top, "ours trace": ours_trace, "peer trace": peer_trace,
             "ours density": ours_density, "peer density": peer_density}
    reference = ours_top(0, 1e-10)[0]
    times: dict[str, list[float]] = {k: [] for k in tasks}
    outputs: dict[str, list] = {k: [] for k in tasks}
    order = list(tasks)
    for r in range(repeats + 1):  # repeat 0 warms up and is dropped
        for name in order[r % len(order):] + order[: r % len(order)]:
            start = time.perf_counter()
            out = tasks[name](r)
            if r:
                times[name].append(time.perf_counter() - start)
                outputs[name].append(out)

    def worst_error(name: str) -> list[float]:
        return [max(abs(a - b) / abs(b) for a, b in zip(out[0], reference, strict=True)) for out in outputs[name]]

    def ratio(a: str, b: str) -> list[float]:
        return [ta / tb for ta, tb in zip(times[a], times[b], strict=True)]

    rows = [
        (f"top-{TOP_K} eigenvalues: our time / PyHessian's", ratio("ours top", "peer top")),
        ("  our time (s)", times["ours top"]), ("  PyHessian's time (s)", times["peer top"]),
        ("  Hessian-vector products, ours", [out[1] for out in outputs["ours top"]]),
        (f"  largest relative error of the {TOP_K}, ours", worst_error("ours top")),
        (f"  largest relative error of the {TOP_K}, PyHessian", worst_error("peer top")),
        (f"trace, {TRACE_SAMPLES} samples: our time / PyHessian's", ratio("ours trace", "peer trace")),
        ("  |our estimate − PyHessian's| / our standard error",
         [abs(a[0] - b[0]) / a[1] for a, b in zip(outputs["ours trace"], outputs["peer trace"], strict=True)]),
        (f"density, 1 run × {DENSITY_STEPS} steps: our time / PyHessian's", ratio("ours density", "peer density")),
        ("  top quadrature node, ours / PyHessian's",
         [a[0] / b[0] for a, b in zip(outputs["ours density"], outputs["peer density"], strict=True)]),
    ]
    header = (f"probe hessian vs PyHessian, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC\n"
              f"sample {SAMPLE.name}, probe set 512, {len(names)} weight matrices, torch {torch.__version__}, "
              f"threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
              f"{repeats} interleaved repeats, wall clock\n"
              f"reference top-{TOP_K} (Lanczos to 1e-10): {', '.join(f'{v:.5g}' for v in reference)}\n"
              f"load average (1, 5, 15 min): before {_load(load_before)}, after {_load(os.getloadavg())}\n")
    lines = ["| measured | median | min – max |", "|---|---|---|"]
    lines += [f"| {what} | {_fmt(statistics.median(v))} | {_fmt(min(v))} – {_fmt(max(v))} |" for what, v in rows]
    report = header + "\n" + "\n".join(lines) + "\n"
    print(report)
    (HERE / "RESULTS-hessian.md").write_text(
        "# probe hessian vs PyHessian\n\nWritten by `benchmarks/hessian.py`; measured with "
        f"`OMP_NUM_THREADS=1 python benchmarks/hessian.py --repeats {repeats}`. What each row times is in the "
        "script's docstring.\n\n```\n" + header + "```\n\n" + "\n".join(lines) + "\n")
    return report


def _removed_torch_eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``torch.eig(T, eigenvectors=True)`` returned for PyHessian's symmetric T: (n, 2) real/imaginary parts."""
    values, vectors = torch.linalg.eigh(matrix)
    return torch.stack([values, torch.zeros_like(values)], dim=1), vectors


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2e}" if abs(value) < 1e-2 else f"{value:.3g}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
