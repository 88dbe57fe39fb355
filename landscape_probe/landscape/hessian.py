"""``lp.hessian``: the Hessian's top eigenpairs, trace and spectral density at a checkpoint, whole or per layer.

H = ∇²L(W) over the selected layers (by default every parameter with ndim ≥ 2;
``include_1d`` adds biases and norm scales), L the mean probe-set loss. Every
estimate runs on Hessian-vector products of one kept gradient graph
(:class:`~landscape_probe.curvature.hessian.GradientGraph`), never forming H:

- the ``top_k`` largest eigenvalues and eigenvectors by Lanczos with full
  reorthogonalisation (:func:`~landscape_probe.curvature.spectrum.top_eigenpairs`);
- the trace by Hutchinson's estimator with Rademacher vectors, stopped when
  its standard error is at most ``trace_tolerance`` of it
  (:func:`~landscape_probe.curvature.trace.hutchinson_trace`);
- the density by stochastic Lanczos quadrature, ``density_runs`` runs of
  ``density_steps`` products (Ubaru, Chen & Saad 2017; as PyHessian, Yao et al. 2020);
- with ``per_layer``, the top-k and trace of every layer's block H_ll, the
  Hessian of L in that layer alone with the others held at W.

Memory: the gradient graph (the probe set's activations) and, for Lanczos,
up to ``iterations + 1`` vectors of the layers' size (``density_steps + 1``
for each quadrature run); the eigenvectors are copied to the host.

Random vectors are Rademacher, drawn from ``seed``: the Lanczos start from
``seed``, trace sample i from ``seed + 1_000_000 + i``, quadrature run r from
``seed + 2_000_000 + r``, restarts from ``seed + 3_000_000 + i``.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> data = (torch.randn(16, 3), torch.randint(0, 2, (16,)))
    >>> result = hessian(model, data, top_k=2, density_runs=2, device="cpu", dtype="float64")
    >>> result.eigenvalues.shape, result.eigenvectors.shape
    ((2,), (2, 20))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from landscape_probe.curvature.hessian_direction import RESTART_SEEDS  # shared with --direction hessian:K
from landscape_probe.devices import exact_float32
from landscape_probe.errors import ProbeError
from landscape_probe.landscape.hessian_result import HessianResult
from landscape_probe.progress import Progress, progress_callback

TRACE_SEEDS, DENSITY_SEEDS = 1_000_000, 2_000_000
DENSITY_GRID_POINTS = 512


@exact_float32()  # no TF32 on a GPU: see devices.exact_float32
def hessian(
    model: nn.Module | str | Path,
    data: Any = None,
    *,
    top_k: int = 5,
    iterations: int = 100,
    tolerance: float = 1e-6,
    trace_samples: int = 200,
    trace_tolerance: float = 0.01,
    density_runs: int = 5,
    density_steps: int = 50,
    per_layer: bool = False,
    select: str | None = None,
    include_1d: bool = False,
    probe_size: int = 512,
    split: str = "train",
    loss: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    output_key: str | None = None,
    progress: bool | Progress = False,
    command_line: str | None = None,
    shard: str = "work",
) -> HessianResult:
    """Estimate the spectrum of the loss Hessian at the model's weights on the probe set.

    Args:
        model, data, probe_size, split, loss, device, dtype, seed, arch, arch_kwargs, trust_checkpoint: as ``lp.slice``.
        top_k: how many of the largest eigenvalues (and eigenvectors) to find.
        iterations: the most Lanczos products for them (per layer too).
        tolerance: stop Lanczos when every residual ||H v − λ v|| is at most this times max |λ|.
        trace_samples: the most Hutchinson samples (per layer too).
        trace_tolerance: stop sampling once the trace's standard error is at most this fraction of it
            (after 10 samples); 0 draws all ``trace_samples``.
        density_runs, density_steps: quadrature runs averaged, and Lanczos products in each.
        per_layer: also every layer's own block: its top-k and trace.
        select, include_1d: which parameters, as ``probe slice --select / --include-1d``.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the output whose loss is
            differentiated (as ``lp.slice``; recorded as ``output_key``).
        progress: True for a progress bar; or a callable ``progress(done, total, label)``.
        command_line: the command to record as provenance (the CLI's); default: this call.
        shard: under ``torchrun``: ``work`` gives the whole Hessian and each ``per_layer`` block to one rank
            each (only with ``per_layer``); ``data`` gives each rank a part of the probe set and sums the
            gradients and Hessian-vector products over the ranks (:mod:`landscape_probe.data_shard`). Every rank
            returns the whole result.

    Raises:
        ProbeError: for bad settings, a model that does not fit the data, no selected parameter, or
            ``shard="work"`` under ``torchrun`` without ``per_layer``.
    """
    from landscape_probe import distributed

    settings = _settings(top_k, iterations, tolerance, trace_samples, trace_tolerance, density_runs, density_steps,
                         per_layer, select, include_1d, split, dtype, seed)
    distributed.check_shard(shard)
    if distributed.launched() and shard == "work" and not per_layer:
        raise ProbeError("probe hessian --shard work divides the layer blocks of --per-layer among the ranks, so "
                         "without --per-layer use --shard data (the probe set divided) or one process.")
    with distributed.process_group(device):
        return _hessian(model, data, settings, shard, probe_size=probe_size, loss=loss, device=device,
                        arch=arch, arch_kwargs=arch_kwargs, trust_checkpoint=trust_checkpoint, output_key=output_key,
                        progress=progress, command_line=command_line)


def _hessian(model: Any, data: Any, settings: dict[str, Any], shard: str, *, probe_size: int, loss: str | None,
             device: str, arch: str | None, arch_kwargs: dict[str, Any] | None, trust_checkpoint: bool,
             output_key: str | None, progress: bool | Progress, command_line: str | None) -> HessianResult:
    """:func:`hessian` once its settings are checked: the whole Hessian and the blocks, each by its rank(s)."""
    from landscape_probe import distributed
    from landscape_probe.landscape.setup import probe_problem
    from landscape_probe.losses import classifies
    from landscape_probe.params import select_layers

    split, dtype, seed, select, top_k = (settings[k] for k in ("split", "dtype", "seed", "select", "top_k"))
    per_layer = settings["per_layer"]
    problem = probe_problem(model, data, probe_size=probe_size, split=split, loss=loss, device=device, dtype=dtype,
                            seed=seed, arch=arch, arch_kwargs=arch_kwargs, trust_checkpoint=trust_checkpoint,
                            output_key=output_key)
    layers = select_layers(problem.model, select or None, settings["include_1d"])
    if not layers:
        raise ProbeError("No parameter matches --select (and --include-1d), so there is no Hessian to take.")
    stages = ["", *(layers if per_layer else [])]  # "": the whole Hessian, else one layer's block
    mine = distributed.share(stages) if shard == "work" else stages
    done: dict[str, dict[str, Any]] = {}
    with progress_callback(progress) as report:
        for index, stage in enumerate(mine):
            done[stage] = _stage(problem, [stage] if stage else layers, settings, shard, with_density=not stage)
            if report:
                report(index + 1, len(mine), f"hessian: {stage}" if stage else "hessian")
    if shard == "work":  # the other ranks' stages, under torchrun
        done = distributed.gather_items(done, stages)
    whole, blocks = done[""], [done[name] for name in layers if per_layer]
    classification = classifies(problem.y)
    parameters = dict(problem.model.named_parameters())
    sizes = np.array([parameters[name].numel() for name in layers], dtype=np.int64)
    return HessianResult(
        layer_names=list(layers), layer_sizes=sizes, **whole["fields"],
        layer_eigenvalues=_padded([b["fields"]["eigenvalues"] for b in blocks], top_k) if per_layer else None,
        layer_traces=np.array([b["fields"]["trace"] for b in blocks]) if per_layer else None,
        layer_trace_standard_errors=np.array([b["fields"]["trace_standard_error"] for b in blocks])
        if per_layer else None,
        loss_at_point=whole["loss"], gradient_norm=whole["gradient_norm"],
        hessian_vector_products=whole["products"] + sum(b["products"] for b in blocks),
        settings={**settings, "probe_size": len(problem.x)}, loss_name=problem.loss_name,
        classification=classification, provenance=problem.provenance(command_line or _call_text(model), seed),
    )


def _stage(problem: Any, layers: list[str], settings: dict[str, Any], shard: str, *,
           with_density: bool) -> dict[str, Any]:
    """The estimates of the Hessian over ``layers`` (all of them: the whole one, with its density; or one block).

    With ``shard="data"`` on this rank's part of the probe set, the graph summed over the ranks.
    """
    from landscape_probe import params as P
    from landscape_probe.slicing.evaluator import ProbeEvaluator

    x, y, weight = problem.x, problem.y, 1.0
    if shard == "data":
        from landscape_probe.data_shard import shard_of

        x, y, weight = shard_of(x, y)
    evaluator = ProbeEvaluator(problem.model, x, y, problem.loss_name, layers)
    if shard == "data":
        from landscape_probe.data_shard import SummedGraph

        graph: Any = SummedGraph.at(evaluator.loss_fn, evaluator.base, weight)
    else:
        graph = evaluator.evaluate_with_hessian(evaluator.base)[1]
    estimates = _estimates(graph, settings, with_density=with_density)
    graph.release()
    return {**estimates, "loss": float(graph.loss), "gradient_norm": float(P.norm(graph.gradient))}


def _estimates(graph: Any, settings: dict[str, Any], *, with_density: bool) -> dict[str, Any]:
    """Top-k eigenpairs, trace and (``with_density``) quadrature of the Hessian a kept gradient graph gives."""
    import torch

    from landscape_probe import params as P
    from landscape_probe.curvature.hessian import rademacher_like
    from landscape_probe.curvature.spectrum import smoothed_density, stochastic_lanczos_quadrature, top_eigenpairs
    from landscape_probe.curvature.trace import hutchinson_trace

    leaves, seed = graph.leaves, settings["seed"]

    def signs(offset: int) -> Callable[[int], torch.Tensor]:
        return lambda index: P.flatten(rademacher_like(leaves, seed + offset + index))

    restarts = iter(range(settings["iterations"] + 1))
    top = top_eigenpairs(graph.flat_hessian_vector_product, signs(0)(0), k=settings["top_k"],
                         iterations=settings["iterations"], tolerance=settings["tolerance"],
                         restart=lambda: signs(RESTART_SEEDS)(next(restarts)))
    trace = hutchinson_trace(graph.flat_hessian_vector_product, signs(TRACE_SEEDS),
                             max_samples=settings["trace_samples"], tolerance=settings["trace_tolerance"])
    fields: dict[str, Any] = {
        "eigenvalues": top.eigenvalues.numpy(), "eigenvalue_residuals": top.residuals.numpy(),
        "trace": trace.trace, "trace_standard_error": trace.standard_error,
    }
    products = top.products + len(trace.samples)
    if with_density:
        runs = stochastic_lanczos_quadrature(graph.flat_hessian_vector_product, signs(DENSITY_SEEDS),
                                             runs=settings["density_runs"], steps=settings["density_steps"])
        products += runs.products
        grid, width = _density_grid(runs.nodes)
        fields.update(eigenvectors=top.eigenvectors.detach().cpu().double().numpy(),
                      trace_samples=np.array(trace.samples), density_nodes=runs.nodes.numpy(),
                      density_weights=runs.weights.numpy(), density_grid=grid.numpy(),
                      density=smoothed_density(runs.nodes, runs.weights, grid, width).numpy(), density_width=width)
    return {"fields": fields, "products": products}


def _density_grid(nodes: Any) -> tuple[Any, float]:
    """A grid over the nodes with a margin of 5σ each side, σ = 1% of the nodes' range (or of their size)."""
    import torch

    finite = nodes[torch.isfinite(nodes)]
    low, high = float(finite.min()), float(finite.max())
    width = 0.01 * (high - low) or 0.01 * max(abs(high), 1e-12)
    return torch.linspace(low - 5 * width, high + 5 * width, DENSITY_GRID_POINTS, dtype=torch.float64), width


def _padded(rows: list[np.ndarray], width: int) -> np.ndarray:
    table = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    return table


def _settings(top_k: int, iterations: int, tolerance: float, trace_samples: int, trace_tolerance: float,
              density_runs: int, density_steps: int, per_layer: bool, select: str | None, include_1d: bool,
              split: str, dtype: str, seed: int) -> dict[str, Any]:
    checks = (
        (top_k >= 1, f"--top-k must be at least 1, got {top_k}."),
        (iterations >= top_k, f"--iterations must be at least --top-k ({top_k}), got {iterations}."),
        (np.isfinite(tolerance) and tolerance > 0, f"--tolerance must be a positive number, got {tolerance}."),
        (trace_samples >= 2, f"--trace-samples must be at least 2 (for a standard error), got {trace_samples}."),
        (np.isfinite(trace_tolerance) and trace_tolerance >= 0,
         f"--trace-tolerance must be zero or a positive number, got {trace_tolerance}."),
        (density_runs >= 1, f"--density-runs must be at least 1, got {density_runs}."),
        (density_steps >= 2, f"--density-steps must be at least 2, got {density_steps}."),
    )
    for ok, sentence in checks:
        if not ok:
            raise ProbeError(sentence)
    return {"top_k": top_k, "iterations": iterations, "tolerance": float(tolerance), "trace_samples": trace_samples,
            "trace_tolerance": float(trace_tolerance), "density_runs": density_runs, "density_steps": density_steps,
            "per_layer": bool(per_layer), "select": select or "", "include_1d": bool(include_1d), "split": split,
            "dtype": dtype, "seed": seed}


def _call_text(model: Any) -> str:
    return f"lp.hessian({repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__})"
