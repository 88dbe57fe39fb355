"""The summary of a ``probe slice`` results file, as ``probe slice`` and ``probe show`` print it.

Everything printed is read back from the file, so that the summary after a
run and ``probe show`` later are the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from landscape_probe.slicing.store import SliceData

SUMMARY_ROWS = 6


def print_summary(results_path: Path, console: Console) -> None:
    """Print a slice results file: settings, a table of measured vs predicted, and the verdicts in words."""
    from rich import box
    from rich.table import Table

    from landscape_probe.slicing.store import read_slice

    data = read_slice(results_path)
    attrs, whole = data.attrs, data.whole
    console.print(
        f"[bold]{Path(str(attrs.get('checkpoint_path', '')) or results_path).name}[/] "
        f"({attrs.get('architecture', '?')}), {len(data.layer_names)} layers perturbed, "
        f"direction {attrs['direction']}, scaling {attrs['scaling']}, norm {attrs['norm']}, "
        f"{attrs['probe_size']} probe examples, loss {attrs['loss']}",
        highlight=False,
    )
    console.print(
        f"loss(0) = {whole['loss_at_zero']:.4g}, ||g(0)|| = {whole['gradient_norm']:.4g}, "
        f"λ_max = {whole['lambda_max']:.4g}, slope g·u = {whole['slope']:.4g}, uᵀHu = {whole['curvature']:.4g}",
        highlight=False,
    )
    table = Table(
        title="Measured relative change vs predictions",
        caption="Δf, Δg: measured relative function and gradient change; ~: calibrated on the smallest scales",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for header in ("t", "loss", "Δf", "DRT~", "Δg", "DRT", "DRT~", "Eucl", "Eucl~"):
        table.add_column(header, justify="right", min_width=7, no_wrap=True)
    for i in _summary_rows(data.scales):
        table.add_row(
            *(
                _number(values[i])
                for values in (
                    data.scales,
                    whole["loss"],
                    whole["relative_function_change"],
                    whole["calibrated_drt_function_prediction"],
                    whole["relative_gradient_change"],
                    whole["drt_prediction"],
                    whole["calibrated_drt_prediction"],
                    whole["euclidean_gradient_prediction"],
                    whole["calibrated_euclidean_gradient_prediction"],
                )
            )
        )
    console.print(table)
    console.print(whole["verdict"], highlight=False)
    console.print(whole["function_verdict"], highlight=False)
    console.print(
        f"The relative gradient change {_breakdown_words(whole['breakdown_scale'], data.scales)}.", highlight=False
    )
    if int(whole["nonfinite_points"]):
        console.print(f"[yellow]{whole['nonfinite_points']} scale(s) overflowed (inf/NaN recorded).[/]")
    if data.layers:
        _print_layers(data, console)


def _print_layers(data: SliceData, console: Console) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title="Each layer perturbed alone", box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("layer", "||u_l|| (step at t = 1)", "λ_max (own block)", "breakdown t"):
        table.add_column(header, justify="right")
    for name, sweep in data.layers.items():
        table.add_row(
            name,
            _number(sweep["unit_step_norm"]),
            _number(sweep["lambda_max"]),
            _breakdown_cell(sweep["breakdown_scale"], data.scales),
        )
    console.print(table)
    console.print(
        "Breakdown t: where the relative gradient change with that layer alone first reaches 1 "
        "(DRT predicts the same t for every layer; Euclidean trust, a t falling with ||u_l||·λ_max).",
        highlight=False,
    )


def _breakdown_words(breakdown: float, scales: np.ndarray) -> str:
    """How the summary states a breakdown scale (see :func:`_breakdown_cell`)."""
    if not math.isfinite(breakdown):
        return "stays below 1 over the sweep"
    if breakdown <= _smallest_positive(scales):
        return f"is already at or above 1 at the smallest scale, t = {breakdown:.3g}"
    return f"reaches 1 at t ≈ {breakdown:.3g}"


def _breakdown_cell(breakdown: float, scales: np.ndarray) -> str:
    """A breakdown scale for a table: ``≤ t₁`` when the first scale is already past it, ``–`` when never."""
    if not math.isfinite(breakdown):
        return "–"
    prefix = "≤ " if breakdown <= _smallest_positive(scales) else ""
    return prefix + _number(breakdown)


def _smallest_positive(scales: np.ndarray) -> float:
    return min((float(t) for t in scales if t > 0), default=math.inf)


def _number(value: float) -> str:
    """Three significant digits in at most 7 characters: 0.0123, 456, 2.97e4, 1.05e-5."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _summary_rows(scales: np.ndarray) -> list[int]:
    """Up to ``SUMMARY_ROWS`` indices of positive scales, spread evenly, always the largest."""
    import numpy as np

    positive = np.flatnonzero(scales > 0)
    if len(positive) <= SUMMARY_ROWS:
        return list(positive)
    picks = np.linspace(0, len(positive) - 1, SUMMARY_ROWS).round().astype(int)
    return [int(positive[i]) for i in sorted(set(picks))]
