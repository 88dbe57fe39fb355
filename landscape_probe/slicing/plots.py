"""Figures of a ``probe slice`` results file, drawn from the file alone.

- ``relative_change``: relative function change and relative gradient change
  against t on log–log axes, measured, with deep relative trust and Euclidean
  trust raw (dashed) and calibrated on the smallest scales (dotted; the legend
  gives the constant c). A calibrated line whose c is within 10% of 1 would lie
  on the raw one: it is not drawn, and the raw line's legend says so. Both
  calibrated lines meet at the smallest scales, where they were fitted;
- ``loss``: the loss along the slice with the quadratic and Taylor models;
- with per-layer sweeps, ``layers_heatmap`` (layer × t on a log axis, colour =
  log10 of the relative gradient change when that layer alone is perturbed) and
  ``layers_breakdown`` (each layer's breakdown scale, where that change first
  reaches 1, as a dot on a log axis, grey arrows for layers that never reach it;
  beside it the scale at which DRT and Euclidean trust predict it, both linear in
  |t| for one layer: t* = |t| / prediction(t)).

Example:
    >>> draw(Path("mlp16_digits_slice.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/mlp16_digits_slice_relative_change.png'), ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.figures import CHARACTER_WIDTH, fix_margins, save_figures, subplots, text_width
from landscape_probe.slicing.result import SliceResult, SliceSweep
from landscape_probe.slicing.store import read_slice

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MEASURED, DRT, EUCLIDEAN = "black", "tab:red", "tab:blue"
SAME_LINE = 0.1
"""A calibration constant c with |c − 1| below this draws a line indistinguishable from the raw one."""


def draw(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw every figure of a slice results file into ``out_dir``; returns the files written."""
    data = read_slice(results_path)
    figures = {"relative_change": _relative_change(data), "loss": _loss(data)}
    if data.layers:
        figures["layers_heatmap"] = _layers_heatmap(data)
        figures["layers_breakdown"] = _layers_breakdown(data)
    for figure in figures.values():
        for axes in figure.axes:
            _plain_log_labels(axes)
    return save_figures(figures, out_dir, formats, prefix=f"{Path(results_path).stem}_")


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten_label(value: float, _position: int | None = None) -> str:
    """``10⁻³`` for a power of ten (``−10²`` below zero, ``0`` at zero), else nothing.

    Plain text with Unicode superscripts: matplotlib's own log labels are
    mathtext, whose parser took a fifth of the time of drawing a slice's figures.
    """
    if value == 0:
        return "0"
    exponent = round(float(np.log10(abs(value))))
    if not np.isclose(abs(value), 10.0**exponent, rtol=1e-9):
        return ""
    return f"{'−' if value < 0 else ''}10{str(exponent).translate(SUPERSCRIPTS)}"


MINOR_TICK_DECADES = 3
"""Log axes spanning more decades than this get no minor ticks (each tick is a few artists to lay out and draw)."""


def _plain_log_labels(axes: Axes) -> None:
    """Label the log (and symlog) axes of ``axes`` at powers of ten, in plain text, with no minor labels.

    A log axis spanning more than :data:`MINOR_TICK_DECADES` decades keeps its
    ticks at the powers of ten only: its minor ticks were a third of the time
    of drawing a slice's figures, and tell little over so many decades.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

    for axis, limits in ((axes.xaxis, axes.get_xlim()), (axes.yaxis, axes.get_ylim())):
        if axis.get_scale() not in ("log", "symlog"):
            continue
        axis.set_major_formatter(FuncFormatter(power_of_ten_label))
        axis.set_minor_formatter(NullFormatter())
        low, high = sorted(abs(float(v)) for v in limits)
        if axis.get_scale() == "symlog" or (low > 0 and np.log10(high / low) > MINOR_TICK_DECADES):
            axis.set_minor_locator(NullLocator())


def _title(data: SliceResult) -> str:
    architecture = data.provenance.get("architecture", "")
    only = ", loss only (no gradient measured)" if data.config.measure == "loss" else ""
    return f"{architecture}: {data.config.direction} direction, {data.config.resolved_scaling} scaling{only}"


def _fitted(text: str, figure: Figure, fontsize: float) -> str:
    """``text`` with each line wrapped to fit the figure's width at ``fontsize`` (:data:`CHARACTER_WIDTH` a character).

    The figures' margins are fixed (:func:`~landscape_probe.figures.fix_margins`) rather than grown to fit
    what sticks out, so a long title must break instead.
    """
    import textwrap

    width = max(20, int(0.9 * figure.get_figwidth() * 72 / (CHARACTER_WIDTH * fontsize)))
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


RELATIVE_CHANGE_PANELS = {
    "relative_function_change": (
        "relative function change ||F(t) − F(0)|| / ||F(0)||",
        [
            ("drt_prediction", "DRT", DRT, "--", None),
            ("calibrated_drt_function_prediction", "DRT, calibrated", DRT, ":", "drt_prediction"),
            ("calibrated_euclidean_function_prediction", "linear in ||ΔW||, calibrated", EUCLIDEAN, ":", None),
        ],
    ),
    "relative_gradient_change": (
        "relative gradient change ||g(t) − g(0)|| / ||g(0)||",
        [
            ("drt_prediction", "DRT", DRT, "--", None),
            ("calibrated_drt_prediction", "DRT, calibrated", DRT, ":", "drt_prediction"),
            ("euclidean_gradient_prediction", "Euclidean |λ|·||ΔW||/||g||", EUCLIDEAN, "--", None),
            ("calibrated_euclidean_gradient_prediction", "Euclidean, calibrated", EUCLIDEAN, ":",
             "euclidean_gradient_prediction"),
        ],
    ),
}
"""Per panel of the ``relative_change`` figure: the measured dataset, its y label, and the predictions
drawn beside it (dataset, label, colour, line style, and for a calibrated one the raw prediction it scales)."""
LOSS_ONLY_PANELS = {"relative_function_change": RELATIVE_CHANGE_PANELS["relative_function_change"]}
"""A loss-only line (``measure = loss``) has no gradient change: only the function panel is drawn."""


def _relative_change(data: SliceResult) -> Figure:
    whole, positive = data.whole, data.scales > 0
    t = data.scales[positive]
    shown = RELATIVE_CHANGE_PANELS if data.config.measure == "gradient" else LOSS_ONLY_PANELS
    figure, panels = subplots(1, len(shown), figsize=(5.5 * len(shown), 4.2), sharex=True, squeeze=False)
    for axes, (measured, (ylabel, predictions)) in zip(panels[0], shown.items()):
        _loglog(axes, t, getattr(whole, measured)[positive], "measured", MEASURED, "-", marker="o")
        for name, label, color, style in _lines(whole, predictions):
            _loglog(axes, t, getattr(whole, name)[positive], label, color, style)
        axes.set_ylabel(ylabel)
        axes.set_xlabel("scale t")
        axes.axhline(1.0, color="grey", linewidth=0.6)
        axes.legend(fontsize=7, title="calibrated lines meet where fitted", title_fontsize=6)
        finite = getattr(whole, measured)[positive]
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if finite.size:
            axes.set_ylim(bottom=min(finite.min(), 1.0) / 10, top=max(finite.max(), 1.0) * 100)
    title = _fitted(_title(data), figure, 10)
    figure.suptitle(title, fontsize=10)
    fix_margins(figure, left=0.9, right=0.2, top=_title_height(title, 10) + 0.1, bottom=0.55, gap=0.95)
    return figure


def _title_height(title: str, fontsize: float) -> float:
    """Inches that a title of these lines takes above the axes, with its padding."""
    return 0.15 + (title.count("\n") + 1) * 1.25 * fontsize / 72


def _lines(sweep: SliceSweep, predictions: list) -> list[tuple[str, str, str, str]]:
    """The lines to draw: each calibrated line labelled with its constant c, or left out when c ≈ 1.

    A calibrated prediction c · raw with |c − 1| < ``SAME_LINE`` lies on the raw
    line at the figure's resolution; the raw line's label then says so.
    """
    lines: dict[str, list[str]] = {}
    for name, label, color, style, raw in predictions:
        constant = sweep.calibration_constants.get(name, float("nan"))
        if raw is not None and raw in lines and abs(constant - 1.0) < SAME_LINE:
            lines[raw][1] += f" (= calibrated, c = {constant:.2g})"
            continue
        suffix = f" (c = {constant:.2g})" if name in sweep.calibration_constants else ""
        lines[name] = [name, label + suffix, color, style]
    return [tuple(line) for line in lines.values()]


def _loglog(
    axes: Axes, t: np.ndarray, values: np.ndarray, label: str, color: str, style: str, marker: str = ""
) -> None:
    shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    axes.loglog(t, shown, linestyle=style, color=color, marker=marker, markersize=3, label=label)


def _loss(data: SliceResult) -> Figure:
    whole = data.whole
    order = np.argsort(np.append(data.scales, 0.0))
    t = np.append(data.scales, 0.0)[order]

    def with_zero(values: np.ndarray) -> np.ndarray:
        return np.append(values, whole.loss_at_zero)[order]

    figure, axes = subplots(figsize=(6, 4.2))
    measured = with_zero(whole.loss)
    axes.plot(t, measured, color=MEASURED, marker="o", markersize=3, label="measured loss")
    if data.config.measure == "gradient":  # a loss-only line has no λ_max or uᵀHu for the models
        quadratic = with_zero(whole.quadratic_loss_model)
        axes.plot(t, quadratic, color=EUCLIDEAN, linestyle="--", label="quadratic model (|λ_max|)")
        axes.plot(t, with_zero(whole.taylor_loss_model), color=DRT, linestyle=":", label="Taylor model (uᵀHu)")
    smallest = np.min(np.abs(data.scales[data.scales != 0]))
    axes.set_xscale("symlog", linthresh=smallest)
    finite = measured[np.isfinite(measured)]
    if finite.size and finite.min() > 0 and finite.max() > 100 * finite.min():
        axes.set_yscale("log")
        axes.set_ylim(finite.min() / 2, finite.max() * 10)
    elif finite.size:
        span = max(finite.max() - finite.min(), 1e-3 * max(abs(finite.max()), 1e-12))
        axes.set_ylim(finite.min() - 0.2 * span, finite.max() + 0.5 * span)
    axes.set_xlabel("scale t (linear below the smallest |t|, log above)")
    axes.set_ylabel(f"probe loss ({data.loss_name})")
    axes.legend(fontsize=8)
    title = _fitted(_title(data), figure, 10)
    axes.set_title(title, fontsize=10)
    fix_margins(figure, left=0.9, right=0.2, top=_title_height(title, 10) + 0.05, bottom=0.55)
    return figure


def _layers_heatmap(data: SliceResult) -> Figure:
    """Layer × t, t on a log axis (cells span the geometric midpoints between scales)."""
    positive = data.scales > 0
    t = data.scales[positive]
    names = list(data.layers)
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.log10(np.array([data.layers[name].relative_gradient_change[positive] for name in names]))
    figure, axes = subplots(figsize=(7, 0.35 * len(names) + 2.2))
    mesh = axes.pcolormesh(_log_edges(t), np.arange(len(names) + 1) - 0.5, np.ma.masked_invalid(grid), cmap="magma")
    axes.set_xscale("log")
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("scale t")
    title = _fitted(f"{_title(data)}\neach layer perturbed alone", figure, 9)
    figure.suptitle(title, fontsize=9)
    fix_margins(figure, left=text_width("\n".join(names), 7) + 0.2, right=0.8, top=_title_height(title, 9) + 0.1,
                bottom=0.55)
    colorbar = figure.colorbar(mesh, ax=axes)
    colorbar.set_label("log₁₀ relative gradient change", fontsize=7)
    return figure


def _log_edges(t: np.ndarray) -> np.ndarray:
    """Cell edges around increasing positive ``t``: geometric midpoints, half a step beyond the ends."""
    logs = np.log10(t)
    step = np.diff(logs)
    if step.size == 0:
        step = np.array([1.0])
    middles = (logs[:-1] + logs[1:]) / 2
    return 10.0 ** np.concatenate([[logs[0] - step[0] / 2], middles, [logs[-1] + step[-1] / 2]])


def predicted_breakdown(scales: np.ndarray, prediction: np.ndarray) -> float:
    """Where a prediction linear in |t| reaches 1: t* = |t| / prediction(t), from the largest finite point.

    Exact for one layer alone: DRT is then κ_l(t) = |t|·κ_l(1), and Euclidean
    trust |λ|·|t|·||u|| / ||g||. NaN when the prediction is 0 or not finite.
    """
    usable = (scales > 0) & np.isfinite(prediction) & (prediction > 0)
    if not usable.any():
        return float("nan")
    i = np.flatnonzero(usable)[-1]
    return float(scales[i] / prediction[i])


def _layers_breakdown(data: SliceResult) -> Figure:
    names = list(data.layers)
    sweeps = [data.layers[name] for name in names]
    breakdown = np.array([sweep.breakdown_scale for sweep in sweeps])
    drt = np.array([predicted_breakdown(data.scales, sweep.drt_prediction) for sweep in sweeps])
    euclidean = np.array([predicted_breakdown(data.scales, sweep.euclidean_gradient_prediction) for sweep in sweeps])
    largest = float(np.max(np.abs(data.scales)))
    smallest = float(np.min(np.abs(data.scales)))
    reached = np.isfinite(breakdown)
    rows = np.arange(len(names))
    figure, axes = subplots(figsize=(9.5, 0.35 * len(names) + 1.8))
    axes.hlines(rows[reached], smallest, breakdown[reached], color=MEASURED, linewidth=1)
    axes.plot(breakdown[reached], rows[reached], "o", color=MEASURED, label="measured: reaches 1")
    if (~reached).any():
        axes.plot(np.full((~reached).sum(), largest), rows[~reached], ">", color="grey",
                  label=f"measured: stays below 1 up to t = {largest:.3g}")
    axes.plot(drt, rows, "x", color=DRT, label="DRT predicts (κ_l = 1)")
    axes.plot(euclidean, rows, "+", color=EUCLIDEAN, markersize=9, label="Euclidean predicts (|λ_l|·||ΔW_l|| = ||g_l||)")
    shown = np.concatenate([[smallest, largest], breakdown, drt, euclidean])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    axes.set_xlim(shown.min() / 1.5, shown.max() * 1.5)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("breakdown scale t (relative gradient change reaches 1)")
    legend = axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    title = _fitted(f"{_title(data)}\neach layer perturbed alone", figure, 9)
    figure.suptitle(title, fontsize=9)
    labels = "\n".join(text.get_text() for text in legend.get_texts())
    fix_margins(figure, left=text_width("\n".join(names), 7) + 0.2, right=text_width(labels, 7) + 0.55,
                top=_title_height(title, 9) + 0.1, bottom=0.55)
    return figure
