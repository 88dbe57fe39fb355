"""Figures of a ``probe slice`` results file, drawn from the file alone.

- ``relative_change``: relative function change and relative gradient change
  against t on log–log axes, measured, with deep relative trust and Euclidean
  trust raw (dashed) and calibrated on the smallest scales (dotted);
- ``loss``: the loss along the slice with the quadratic and Taylor models;
- with per-layer sweeps, ``layers_heatmap`` (layer × t, colour = log10 of the
  relative gradient change when that layer alone is perturbed) and
  ``layers_breakdown`` (each layer's breakdown scale, where that change first
  reaches 1, as a dot on a log axis; grey arrows for layers that never reach it).

Example:
    >>> draw(Path("mlp16_digits_slice.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/mlp16_digits_slice_relative_change.png'), ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.figures import save_figures
from landscape_probe.slicing.store import SliceData, read_slice

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MEASURED, DRT, EUCLIDEAN = "black", "tab:red", "tab:blue"


def draw(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw every figure of a slice results file into ``out_dir``; returns the files written."""
    data = read_slice(results_path)
    figures = {"relative_change": _relative_change(data), "loss": _loss(data)}
    if data.layers:
        figures["layers_heatmap"] = _layers_heatmap(data)
        figures["layers_breakdown"] = _layers_breakdown(data)
    return save_figures(figures, out_dir, formats, prefix=f"{Path(results_path).stem}_")


def _title(data: SliceData) -> str:
    attrs = data.attrs
    return f"{attrs.get('architecture', '')}: {attrs['direction']} direction, {attrs['scaling']} scaling"


RELATIVE_CHANGE_PANELS = {
    "relative_function_change": (
        "relative function change ||F(t) − F(0)|| / ||F(0)||",
        [
            ("drt_prediction", "DRT", DRT, "--"),
            ("calibrated_drt_function_prediction", "DRT, calibrated", DRT, ":"),
            ("calibrated_euclidean_function_prediction", "linear in ||ΔW||, calibrated", EUCLIDEAN, ":"),
        ],
    ),
    "relative_gradient_change": (
        "relative gradient change ||g(t) − g(0)|| / ||g(0)||",
        [
            ("drt_prediction", "DRT", DRT, "--"),
            ("calibrated_drt_prediction", "DRT, calibrated", DRT, ":"),
            ("euclidean_gradient_prediction", "Euclidean |λ|·||ΔW||/||g||", EUCLIDEAN, "--"),
            ("calibrated_euclidean_gradient_prediction", "Euclidean, calibrated", EUCLIDEAN, ":"),
        ],
    ),
}
"""Per panel of the ``relative_change`` figure: the measured dataset, its y label, and the predictions drawn beside it."""


def _relative_change(data: SliceData) -> Figure:
    import matplotlib.pyplot as plt

    whole, positive = data.whole, data.scales > 0
    t = data.scales[positive]
    figure, panels = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for axes, (measured, (ylabel, predictions)) in zip(panels, RELATIVE_CHANGE_PANELS.items()):
        _loglog(axes, t, whole[measured][positive], "measured", MEASURED, "-", marker="o")
        for name, label, color, style in predictions:
            _loglog(axes, t, whole[name][positive], label, color, style)
        axes.set_ylabel(ylabel)
        axes.set_xlabel("scale t")
        axes.axhline(1.0, color="grey", linewidth=0.6)
        axes.legend(fontsize=7)
        finite = whole[measured][positive]
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if finite.size:
            axes.set_ylim(bottom=min(finite.min(), 1.0) / 10, top=max(finite.max(), 1.0) * 100)
    figure.suptitle(_title(data), fontsize=10)
    return figure


def _loglog(
    axes: Axes, t: np.ndarray, values: np.ndarray, label: str, color: str, style: str, marker: str = ""
) -> None:
    shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    axes.loglog(t, shown, linestyle=style, color=color, marker=marker, markersize=3, label=label)


def _loss(data: SliceData) -> Figure:
    import matplotlib.pyplot as plt

    whole = data.whole
    order = np.argsort(np.append(data.scales, 0.0))
    t = np.append(data.scales, 0.0)[order]

    def with_zero(values: np.ndarray) -> np.ndarray:
        return np.append(values, whole["loss_at_zero"])[order]

    figure, axes = plt.subplots(figsize=(6, 4.2))
    measured = with_zero(whole["loss"])
    axes.plot(t, measured, color=MEASURED, marker="o", markersize=3, label="measured loss")
    quadratic = with_zero(whole["quadratic_loss_model"])
    axes.plot(t, quadratic, color=EUCLIDEAN, linestyle="--", label="quadratic model (|λ_max|)")
    axes.plot(t, with_zero(whole["taylor_loss_model"]), color=DRT, linestyle=":", label="Taylor model (uᵀHu)")
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
    axes.set_ylabel(f"probe loss ({data.attrs.get('loss', '')})")
    axes.legend(fontsize=8)
    axes.set_title(_title(data), fontsize=10)
    return figure


def _layers_heatmap(data: SliceData) -> Figure:
    import matplotlib.pyplot as plt

    positive = data.scales > 0
    names = list(data.layers)
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.log10(np.array([data.layers[name]["relative_gradient_change"][positive] for name in names]))
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(names) + 1.8))
    image = axes.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="magma", interpolation="nearest")
    ticks = np.linspace(0, positive.sum() - 1, min(6, int(positive.sum()))).round().astype(int)
    axes.set_xticks(ticks, [f"{value:.2g}" for value in data.scales[positive][ticks]])
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_xlabel("scale t")
    figure.colorbar(image, label="log10 relative gradient change")
    axes.set_title(f"{_title(data)}\neach layer perturbed alone", fontsize=9)
    return figure


def _layers_breakdown(data: SliceData) -> Figure:
    import matplotlib.pyplot as plt

    names = list(data.layers)
    breakdown = np.array([data.layers[name]["breakdown_scale"] for name in names])
    largest = float(np.max(np.abs(data.scales)))
    reached = np.isfinite(breakdown)
    smallest = float(np.min(np.abs(data.scales)))
    rows = np.arange(len(names))
    figure, axes = plt.subplots(figsize=(6, 0.35 * len(names) + 1.8))
    axes.hlines(rows[reached], smallest, breakdown[reached], color=DRT, linewidth=1)
    axes.plot(breakdown[reached], rows[reached], "o", color=DRT, label="reaches 1")
    if (~reached).any():
        axes.plot(np.full((~reached).sum(), largest), rows[~reached], ">", color="grey",
                  label=f"stays below 1 up to t = {largest:.3g}")
    axes.set_xlim(smallest, largest * 1.5)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("breakdown scale t (relative gradient change reaches 1)")
    axes.legend(fontsize=8)
    axes.set_title(f"{_title(data)}\neach layer perturbed alone", fontsize=9)
    return figure
