"""The printed summaries of landscape results, as the commands and ``probe show`` print them.

Example:
    >>> from landscape_probe.landscape.interpolation import InterpolationResult
    >>> print(interpolation_text(InterpolationResult.load("a_to_b.h5")))  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    from rich.console import Console

    from landscape_probe.landscape.interpolation import InterpolationResult
    from landscape_probe.landscape.plane_result import PlaneResult

TABLE_ROWS = 9
"""Rows of α spread evenly over the printed table, besides 0, 1 and the highest loss on the path."""


def print_interpolation_file(results_path: Path, console: Console) -> None:
    """Print an interpolation results file (``probe show``)."""
    from landscape_probe.landscape.interpolation import InterpolationResult

    print_interpolation(InterpolationResult.load(results_path), console)


def interpolation_text(result: InterpolationResult, width: int = 100) -> str:
    """What :func:`print_interpolation` prints on a terminal ``width`` characters wide, as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    print_interpolation(result, Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False))
    return buffer.getvalue()


def print_interpolation(result: InterpolationResult, console: Console) -> None:
    """Print the two ends, the barrier, the size of the step and a table of the line."""
    from rich import box
    from rich.table import Table

    provenance = result.provenance
    a = _name(str(provenance.get("checkpoint_path", "")), "A")
    b = _name(str(provenance.get("other_checkpoint_path", "")), "B")
    console.print(f"[bold]{a} → {b}[/] ({provenance.get('architecture', '?')}), "
                  f"{result.settings.get('probe_size', '?')} probe examples, loss {result.loss_name}", highlight=False)
    console.print(f"loss(A) = {result.loss_a:.4g}, loss(B) = {result.loss_b:.4g}, barrier height = "
                  f"{result.barrier_height:.4g} ({_barrier_words(result)})", highlight=False)
    largest = int(np.argmax(result.kappa)) if len(result.kappa) else None
    console.print(f"the whole step: ||W_B − W_A|| = {result.step_norm:.4g}; deep relative trust "
                  f"Π(1 + κ_l) − 1 = {result.drt_step:.4g} over {len(result.layer_names)} layers"
                  + (f", largest κ = {result.kappa[largest]:.3g} ({result.layer_names[largest]})"
                     if largest is not None else ""), highlight=False)
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("α", "loss", *(["accuracy"] if result.accuracy is not None else []), "rel. function change", "DRT"):
        table.add_column(column, justify="right")
    for i in _rows(result.alphas, result.loss):
        cells = [f"{result.alphas[i]:.3g}", f"{result.loss[i]:.4g}"]
        if result.accuracy is not None:
            cells.append(f"{result.accuracy[i]:.3f}")
        table.add_row(*cells, f"{result.relative_function_change[i]:.3g}", f"{result.drt_prediction[i]:.3g}")
    print_whole(console, table)


def _name(path: str, fallback: str) -> str:
    """A checkpoint's file name, or for a ``probe train`` run's ``checkpoint.pt`` its run folder's name."""
    if not path:
        return fallback
    return Path(path).parent.name if Path(path).stem == "checkpoint" else Path(path).name


def _barrier_words(result: InterpolationResult) -> str:
    if not np.isfinite(result.barrier_height):
        return "undefined: the loss is not finite on the path"
    if result.barrier_height == 0:
        return "the path never rises above its higher end"
    return "the loss rises above both ends between them"


def _rows(alphas: np.ndarray, loss: np.ndarray) -> list[int]:
    """Evenly spread rows, always with the first, the last, α = 0, α = 1 and the highest loss on the path."""
    on_path = np.flatnonzero((alphas >= 0) & (alphas <= 1))
    highest = on_path[np.nanargmax(loss[on_path])] if np.isfinite(loss[on_path]).any() else on_path[0]
    must = {0, len(alphas) - 1, int(np.flatnonzero(alphas == 0)[0]), int(np.flatnonzero(alphas == 1)[0]),
            int(highest)}
    spread = np.linspace(0, len(alphas) - 1, TABLE_ROWS).round().astype(int)
    return sorted(must | set(spread.tolist()))


def print_plane_file(results_path: Path, console: Console) -> None:
    """Print a plane results file (``probe show``)."""
    from landscape_probe.landscape.plane_result import PlaneResult

    print_plane(PlaneResult.load(results_path), console)


def plane_text(result: PlaneResult, width: int = 100) -> str:
    """What :func:`print_plane` prints on a terminal ``width`` characters wide, as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    print_plane(result, Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False))
    return buffer.getvalue()


def print_plane(result: PlaneResult, console: Console) -> None:
    """Print the grid, the loss at W and its range, and with ``measure gradient`` how far each trust region reaches."""
    provenance, settings = result.provenance, result.settings
    source = _name(str(provenance.get("checkpoint_path", "")), "model")
    xs, ys = result.x_coordinates, result.y_coordinates
    console.print(f"[bold]{source}[/] ({provenance.get('architecture', '?')}), plane of d₁ = "
                  f"{settings.get('direction_x')}, d₂ = {settings.get('direction_y')} (filter-normalised, "
                  f"cosine {result.direction_cosine:.3f}), {len(result.layer_names)} parameters moved, "
                  f"{settings.get('probe_size')} probe examples, loss {result.loss_name}", highlight=False)
    done = int(result.done.sum())
    console.print(f"grid a ∈ [{xs[0]:.3g}, {xs[-1]:.3g}] × b ∈ [{ys[0]:.3g}, {ys[-1]:.3g}], "
                  f"{len(xs)} × {len(ys)} cells" + ("" if result.complete else
                                                   f", {done} evaluated (incomplete: resume with --resume)"),
                  highlight=False)
    if result.trajectory_coordinates is not None:
        share = result.explained_variance_ratio
        console.print(f"the trajectory's principal plane: {len(result.trajectory_steps)} saved steps, "
                      f"{share[0]:.0%} + {share[1]:.0%} of their variance, farthest off the plane "
                      f"{result.trajectory_residual.max():.3g}", highlight=False)
    with np.errstate(all="ignore"):
        finite = result.loss[np.isfinite(result.loss)]
    if finite.size:
        console.print(f"loss at W = {result.loss_at_zero:.4g}; on the plane from {finite.min():.4g} to "
                      f"{finite.max():.4g}", highlight=False)
    if result.relative_gradient_change is None:
        return
    threshold = settings.get("threshold", 1.0)
    console.print(f"||g(W)|| = {result.gradient_norm:.4g}, λ_max = {result.lambda_max:.4g}; fraction of the "
                  f"evaluated cells inside each region (relative gradient change < {threshold:g}):", highlight=False)
    evaluated = result.done
    for label, values in (("measured", result.relative_gradient_change), ("deep relative trust", result.drt_prediction),
                          ("Euclidean trust", result.euclidean_gradient_prediction)):
        inside = float(np.mean(values[evaluated] < threshold)) if evaluated.any() else float("nan")
        console.print(f"  {label:<20} {inside:.2f}", highlight=False)
    if evaluated.any():
        measured_inside = result.relative_gradient_change[evaluated] < threshold
        for label, values in (("deep relative trust", result.drt_prediction),
                              ("Euclidean trust", result.euclidean_gradient_prediction)):
            agree = float(np.mean((values[evaluated] < threshold) == measured_inside))
            console.print(f"  {label} agrees with the measurement on {agree:.0%} of the cells", highlight=False)
