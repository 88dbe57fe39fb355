"""The printed summary and the figures of a Hessian spectrum, from its results file.

- ``spectral_density``: the smoothed density of the eigenvalues on a log
  scale (as Ghorbani et al. 2019 and PyHessian draw it), with every run's
  quadrature nodes marked below it and the top-k eigenvalues as lines;
- ``per_layer`` (``--per-layer`` only): every layer's top eigenvalue and trace.

Example:
    >>> draw_hessian(Path("model_hessian.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/model_hessian_spectral_density.png')]
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.figures import save_figures, subplots
from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    from rich.console import Console

    from landscape_probe.landscape.hessian_result import HessianResult


def print_hessian_file(results_path: Path, console: Console) -> None:
    """Print a Hessian results file (``probe show``)."""
    from landscape_probe.landscape.hessian_result import HessianResult

    print_hessian(HessianResult.load(results_path), console)


def hessian_text(result: HessianResult, width: int = 100) -> str:
    """What :func:`print_hessian` prints on a terminal ``width`` characters wide, as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    print_hessian(result, Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False))
    return buffer.getvalue()


def print_hessian(result: HessianResult, console: Console) -> None:
    """Print the top-k eigenvalues, the trace ± its standard error, the density's range and the per-layer table."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    provenance, settings = result.provenance, result.settings
    path = str(provenance.get("checkpoint_path", ""))
    source = (Path(path).parent.name if Path(path).stem == "checkpoint" else Path(path).name) if path else "model"
    parameters = int(np.sum(result.layer_sizes))
    architecture = escape(str(provenance.get("architecture", "?")))
    tensors = f"{len(result.layer_names)} parameter tensor{'s' if len(result.layer_names) != 1 else ''}"
    console.print(f"[bold]{escape(source)}[/] ({architecture}), Hessian over {tensors} "
                  f"({parameters} entries), {settings.get('probe_size')} probe "
                  f"examples, loss {result.loss_name} = {result.loss_at_point:.4g}, ||g|| = {result.gradient_norm:.4g}",
                  highlight=False)
    eigenvalues = ", ".join(f"{value:.5g}" for value in result.eigenvalues)
    asked = int(settings.get("top_k", len(result.eigenvalues)))
    fewer = f" (of the {asked} asked: H has only {parameters} rows)" if asked > len(result.eigenvalues) else ""
    console.print(f"top {len(result.eigenvalues)} eigenvalues{fewer} (Lanczos): {eigenvalues}; largest residual "
                  f"||Hv − λv|| = {np.max(result.eigenvalue_residuals, initial=0.0):.2g}", highlight=False)
    samples = len(result.trace_samples)
    console.print(f"trace (Hutchinson, {samples} Rademacher samples) = {result.trace:.5g} ± "
                  f"{result.trace_standard_error:.2g} (standard error){_missed(result)}", highlight=False)
    nodes, weights = result.density_nodes, result.density_weights
    used = weights > 0
    below, near = mass_near_zero(nodes, weights, result.density_width)
    console.print(f"density ({nodes.shape[0]} quadrature runs of {nodes.shape[1]} nodes): eigenvalues from "
                  f"{np.min(nodes[used]):.4g} to {np.max(nodes[used]):.4g}; {near:.1%} of the mass within "
                  f"±{result.density_width:.2g} (σ) of 0, {below:.1%} below −σ", highlight=False)
    console.print(f"{result.hessian_vector_products} Hessian-vector products", highlight=False)
    if result.layer_eigenvalues is None:
        return
    table = Table(box=box.SIMPLE_HEAD, title="each layer's own block H_ll")
    for column in ("layer", "entries", *(f"λ{i + 1}" for i in range(result.layer_eigenvalues.shape[1])),
                   "trace", "± s.e."):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for i, name in enumerate(result.layer_names):
        values = [f"{v:.4g}" if np.isfinite(v) else "" for v in result.layer_eigenvalues[i]]
        table.add_row(name, str(int(result.layer_sizes[i])), *values, f"{result.layer_traces[i]:.4g}",
                      f"{result.layer_trace_standard_errors[i]:.2g}")
    print_whole(console, table)


def _missed(result: HessianResult) -> str:
    """A note when sampling stopped at --trace-samples with the standard error above --trace-tolerance."""
    asked = float(result.settings.get("trace_tolerance", 0.0))
    relative = result.trace_standard_error / abs(result.trace) if result.trace else float("inf")
    if asked <= 0 or relative <= asked:
        return ""
    return (f"; {100 * relative:.2g}% of it, above the {100 * asked:.2g}% asked: the {len(result.trace_samples)} "
            "samples allowed ran out (raise --trace-samples)")


def draw_hessian(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw the figures of a Hessian results file into ``out_dir``; returns the files written."""
    from landscape_probe.landscape.hessian_result import HessianResult

    result = HessianResult.load(results_path)
    title = f"{result.provenance.get('architecture', '')}: Hessian spectrum ({result.loss_name})"
    figures = {}
    figure, axes = subplots(figsize=(7, 4.5))
    peak = float(np.max(result.density, initial=0.0)) or 1.0
    floor = peak * 1e-6  # six decades below the peak: the Gaussian tails beyond say nothing
    positive = np.where(result.density > floor, result.density, np.nan)
    axes.semilogy(result.density_grid, positive, color="black", linewidth=1.2,
                  label=f"smoothed density (σ = {result.density_width:.2g})")
    for run, (nodes, weights) in enumerate(zip(result.density_nodes, result.density_weights)):
        used = weights > 0
        axes.plot(nodes[used], np.full(used.sum(), floor), "|", color="tab:blue", markersize=8,
                  label="quadrature nodes" if run == 0 else None)
    for i, value in enumerate(result.eigenvalues):
        axes.axvline(value, color="tab:red", linewidth=0.7, linestyle="--", label="top-k (Lanczos)" if i == 0 else None)
    axes.set_ylim(floor / 3, peak * 3)
    axes.set_xlabel("eigenvalue")
    axes.set_ylabel("density")
    axes.set_title(f"{title}\ntrace {result.trace:.4g} ± {result.trace_standard_error:.2g}", fontsize=9)
    axes.legend(fontsize=7)
    figures["spectral_density"] = figure
    if result.layer_eigenvalues is not None:
        figures["per_layer"] = _per_layer(result, title)
    return save_figures(figures, out_dir, formats, prefix=f"{Path(results_path).stem}_")


def _per_layer(result: HessianResult, title: str):
    """Each layer's top eigenvalue and trace (with ±3 standard errors), side by side."""
    positions = np.arange(len(result.layer_names))
    figure, (top, trace) = subplots(1, 2, figsize=(11, 0.35 * len(positions) + 2.5))
    top.barh(positions, result.layer_eigenvalues[:, 0], color="tab:red")
    top.set_xlabel("largest eigenvalue of H_ll")
    trace.barh(positions, result.layer_traces, xerr=3 * result.layer_trace_standard_errors, color="tab:blue")
    trace.set_xlabel("trace of H_ll (± 3 s.e.)")
    for axes in (top, trace):
        axes.set_yticks(positions, result.layer_names, fontsize=7)
        axes.invert_yaxis()
        axes.axvline(0.0, color="grey", linewidth=0.6)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def mass_near_zero(nodes: np.ndarray, weights: np.ndarray, width: float) -> tuple[float, float]:
    """The density's mass below −σ and within ±σ of 0, averaged over the quadrature runs (σ = ``width``).

    A trained network's bulk of near-zero eigenvalues falls on one node a hair
    either side of 0, which says nothing about negative curvature; σ (1 % of the
    nodes' range) is the resolution the smoothed density draws with.
    """
    used = weights > 0
    runs = nodes.shape[0]
    below = float(np.sum(weights[used & (nodes < -width)]) / runs)
    near = float(np.sum(weights[used & (np.abs(nodes) <= width)]) / runs)
    return below, near
