"""The summary of a slice, as ``probe slice`` and ``probe show`` print it and ``SliceResult.summary()`` returns it.

Everything printed comes from the :class:`~landscape_probe.slicing.result.SliceResult`
as the results file holds it, so that the summary after a run and ``probe
show`` later are the same.

Example:
    >>> print(summary_text(SliceResult.load("mlp16_digits_slice.h5")))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from landscape_probe.slicing.result import SliceResult

SUMMARY_ROWS = 6


def print_summary(results_path: Path, console: Console) -> None:
    """Print a slice results file (``probe show``)."""
    from landscape_probe.slicing.store import read_slice

    print_result(read_slice(results_path), console)


def summary_text(result: SliceResult, width: int = 100) -> str:
    """What :func:`print_result` prints on a terminal ``width`` characters wide, as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    print_result(result, Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False))
    return buffer.getvalue()


def print_result(result: SliceResult, console: Console) -> None:
    """Print a slice: settings, a table of measured vs predicted, and the verdicts in words."""
    from rich import box
    from rich.table import Table

    config, provenance, whole = result.config, result.provenance, result.whole
    source = str(provenance.get("checkpoint_path", "")) or (str(result.path) if result.path else "")
    console.print(
        f"[bold]{Path(source).name or 'unsaved slice'}[/] "
        f"({provenance.get('architecture', '?')}), {len(result.layer_names)} layers perturbed, "
        f"direction {config.direction}, scaling {config.resolved_scaling}, norm {config.norm}, "
        f"{config.probe_size} probe examples, loss {result.loss_name}",
        highlight=False,
    )
    if config.measure == "loss":
        _print_loss_only(result, console)
        return
    console.print(
        f"loss(0) = {whole.loss_at_zero:.4g}, ||g(0)|| = {whole.gradient_norm:.4g}, "
        f"λ_max = {whole.lambda_max:.4g}, slope g·u = {whole.slope:.4g}, uᵀHu = {whole.curvature:.4g}",
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
    for i in _summary_rows(result.scales):
        table.add_row(
            *(
                _number(values[i])
                for values in (
                    result.scales,
                    whole.loss,
                    whole.relative_function_change,
                    whole.calibrated_drt_function_prediction,
                    whole.relative_gradient_change,
                    whole.drt_prediction,
                    whole.calibrated_drt_prediction,
                    whole.euclidean_gradient_prediction,
                    whole.calibrated_euclidean_gradient_prediction,
                )
            )
        )
    print_whole(console, table)
    from landscape_probe.slicing.trust import UNDEFINED_AT_W

    if UNDEFINED_AT_W in (whole.verdict, whole.function_verdict):
        # weights (or what was measured at them) are NaN/inf: no shape, verdict or breakdown is stated
        console.print(f"Verdicts: {UNDEFINED_AT_W}.", highlight=False)
    else:
        console.print(whole.verdict, highlight=False)
        console.print(whole.function_verdict, highlight=False)
        breakdown = _breakdown_words(whole.breakdown_scale, result.scales, whole.relative_gradient_change)
        console.print(f"The relative gradient change {breakdown}.", highlight=False)
        if result.step_over_breakdown is not None:
            console.print(_step_words(result), highlight=False)
    if whole.nonfinite_points:
        console.print(f"[yellow]{whole.nonfinite_points} scale(s) overflowed (inf/NaN recorded).[/]")
    if result.layers:
        _print_layers(result, console)
        _print_advice(result, console)
    for name, why in result.skipped_layers.items():
        console.print(f"[yellow]{name}: no sweep of its own; {why}.[/]", highlight=False)


def _print_loss_only(result: SliceResult, console: Console) -> None:
    """A loss-only line: loss, accuracy, function change and KL beside DRT; no gradient verdict, said so."""
    from rich import box
    from rich.table import Table

    from landscape_probe.slicing.trust import UNDEFINED_AT_W

    whole = result.whole
    console.print(
        f"loss(0) = {whole.loss_at_zero:.4g}. Only the loss was measured (--measure loss): forward passes, no "
        "gradient change or λ_max, so nothing is said of the gradient's trust region or of its Euclidean trust "
        "in λ_max; the function change's Euclidean trust is linear in the step, c·||ΔW|| (linear~).",
        highlight=False,
    )
    columns = {"t": result.scales, "loss": whole.loss, "accuracy": whole.accuracy, "Δf": whole.relative_function_change,
               "DRT": whole.drt_prediction, "DRT~": whole.calibrated_drt_function_prediction,
               "linear~": whole.calibrated_euclidean_function_prediction, "KL": whole.kl_divergence}
    columns = {header: values for header, values in columns.items() if values is not None}
    table = Table(title="Measured along the line", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="Δf: relative function change; ~: calibrated on the smallest scales; linear: c·||ΔW||")
    for header in columns:
        table.add_column(header, justify="right", min_width=7, no_wrap=True)
    for i in _summary_rows(result.scales):
        table.add_row(*(_number(values[i]) for values in columns.values()))
    print_whole(console, table)
    if whole.function_verdict == UNDEFINED_AT_W:
        console.print(f"Verdicts: {UNDEFINED_AT_W}.", highlight=False)
    else:
        console.print(whole.function_verdict, highlight=False)
    if whole.nonfinite_points:
        console.print(f"[yellow]{whole.nonfinite_points} scale(s) overflowed (inf/NaN recorded).[/]")


def _print_layers(result: SliceResult, console: Console) -> None:
    from rich import box
    from rich.table import Table

    grouped = any(len(sweep.layer_names) > 1 for sweep in result.layers.values())
    title = "Each group of layers perturbed alone" if grouped else "Each layer perturbed alone"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("group" if grouped else "layer", "||u_l|| (step at t = 1)", "λ_max (own block)", "breakdown t"):
        table.add_column(header, justify="right")
    from landscape_probe.slicing.trust import UNDEFINED_AT_W

    for name, sweep in result.layers.items():
        table.add_row(
            name,
            _number(sweep.unit_step_norm),
            _number(sweep.lambda_max),
            "undefined" if sweep.verdict == UNDEFINED_AT_W else _breakdown_cell(sweep.breakdown_scale, result.scales),
        )
    print_whole(console, table)
    console.print(
        "Breakdown t: where the relative gradient change with that layer alone first reaches 1 "
        "(DRT predicts the same t for every layer; Euclidean trust, a t falling with ||u_l||·λ_max).",
        highlight=False,
    )


def _print_advice(result: SliceResult, console: Console) -> None:
    """One line of learning-rate advice at the default threshold, for a gradient slice with relative scaling."""
    from landscape_probe.errors import ProbeError
    from landscape_probe.slicing.advice import DEFAULT_THRESHOLD, advice_from_slice
    from landscape_probe.slicing.trust import UNDEFINED_AT_W

    if result.whole.verdict == UNDEFINED_AT_W:
        return
    try:  # advice_from_slice says which slices it can read (gradient, relative, Frobenius, --layers)
        advice = advice_from_slice(result, DEFAULT_THRESHOLD)
    except ProbeError:
        return
    if not math.isfinite(advice.together):
        return
    adam = f", Adam {advice.adam_lr:.3g}" if math.isfinite(advice.adam_lr) else ""
    console.print(f"Advice (relative gradient change under {DEFAULT_THRESHOLD:g}): learning rate Fromage/LARS "
                  f"{advice.fromage_lr:.3g}, SGD {advice.sgd_lr:.3g}{adam}; per layer and with caveats: probe advise.",
                  highlight=False)


def _breakdown_words(breakdown: float, scales: np.ndarray, measured: np.ndarray | None = None) -> str:
    """How the summary states a breakdown scale (see :func:`_breakdown_cell`).

    "Stays below 1" is said only of the positive scales where the ``measured``
    relative gradient change is not NaN (NaN is never ≥ 1, so a NaN sweep
    would otherwise be said to stay below 1).
    """
    if not math.isfinite(breakdown):
        positive = [float(m) for t, m in zip(scales, measured) if t > 0] if measured is not None else []
        defined = sum(not math.isnan(m) for m in positive)
        if measured is None or defined == len(positive):
            return "stays below 1 over the sweep"
        if defined == 0:
            return "is NaN at every scale, so where it reaches 1 is unknown"
        return f"stays below 1 at the {defined} of {len(positive)} scales where it is not NaN"
    if breakdown <= _smallest_positive(scales):
        return f"is already at or above 1 at the smallest scale, t = {breakdown:.3g}"
    return f"reaches 1 at t ≈ {breakdown:.3g}"


def _step_words(result: SliceResult) -> str:
    """Where an optimiser's step (t = 1) sits against the breakdown scale: ``step / breakdown``, in words."""
    step = result.provenance.get("optimizer_step") or result.config.direction
    ratio, scaling = result.step_over_breakdown, result.config.resolved_scaling
    if scaling != "none":
        return (f"Optimizer step ({step}): step / breakdown is undefined with --scaling {scaling}, where t = 1 "
                "is not the step itself; slice with --scaling none.")
    if not math.isfinite(ratio):
        largest = max(float(t) for t in result.scales)
        return (f"Optimizer step ({step}): step / breakdown < {_number(1 / largest)}: the relative gradient "
                f"change stays below 1 up to t = {_number(largest)} steps, so the step is well inside its trust region.")
    bound = "≥ " if result.breakdown_scale <= _smallest_positive(result.scales) else ""
    where = ("past its trust region: the relative gradient change reaches 1 before the step is complete"
             if ratio > 1 else "inside its trust region")
    return f"Optimizer step ({step}): step / breakdown = {bound}{_number(ratio)}, {where}."


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
    """Up to ``SUMMARY_ROWS`` indices of positive scales, spread evenly, always the largest; with negative scales
    (``--two-sided``) as many again of those before them, always the most negative."""
    import numpy as np

    rows = []
    for side in (np.flatnonzero(scales < 0), np.flatnonzero(scales > 0)):  # each in the order of the file
        picks = np.linspace(0, len(side) - 1, min(len(side), SUMMARY_ROWS)).round().astype(int)
        rows += [int(side[i]) for i in sorted(set(picks))]
    return rows
