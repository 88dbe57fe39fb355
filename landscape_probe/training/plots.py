"""Figures of a ``probe train`` results file, drawn from the file alone.

Each optimiser is shown at its best learning rate of the grid, first seed:

- ``loss``: training loss per step, one panel per depth, one line per optimiser;
- ``accuracy``: train (solid) and test (dashed) accuracy after each epoch;
- ``weight_norm_depth<d>``: ||W_l||_F of every layer during training, one
  panel per optimiser (the paper's Frobenius-norm stability figure: Fromage
  keeps every layer's norm near its initial value, Adam lets them drift);
- ``relative_update_depth<d>``: ||ΔW_l|| / ||W_l|| per layer and step;
- ``diagnostics_depth<d>``: sharpness (beside 2/η, gradient descent's edge of stability,
  for SGD, and (2 + 2β)/η for momentum and Nesterov) and gradient noise scale, when recorded, and the
  relative update at the diagnostic steps in the spectral norm beside the Frobenius
  one (median over layers): Muon's orthogonalised step is small in the first; and the
  optimiser's own next step over its breakdown scale (above 1: it steps past its trust region);
- ``depth``: for several depths, final training accuracy against depth per
  optimiser (mean over seeds; a diverged run counts as 0), the paper's depth figure.

Example:
    >>> draw(Path("runs/train/results.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/loss.png'), ...]
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.figures import save_figures, subplots
from landscape_probe.training.result import TrainResult
from landscape_probe.training.store import RunResult, summary_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def draw(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw every figure of a train results file into ``out_dir``; returns the files written."""
    result = TrainResult.load(results_path)
    runs, units = result.runs, result.loss_units
    shown = _shown_runs(runs)
    depths = sorted({run.depth for run in shown})
    figures = {"loss": _per_depth(shown, depths, partial(_loss_panel, units=units)),
               "accuracy": _per_depth(shown, depths, _accuracy_panel)}
    for depth in depths:
        at_depth = [run for run in shown if run.depth == depth]
        figures[f"weight_norm_depth{depth}"] = _per_optimizer(at_depth, "weight_norm", "||W_l||_F", depth)
        figures[f"relative_update_depth{depth}"] = _per_optimizer(
            at_depth, "relative_update", "||ΔW_l|| / ||W_l||", depth)
        if any(len(run.records["diagnostic_steps"]) for run in at_depth):
            momentum = float(result.config.get("momentum", 0.9))
            figures[f"diagnostics_depth{depth}"] = _diagnostics(at_depth, depth, units, momentum)
    if len(depths) > 1:
        figures["depth"] = _depth_figure(runs)
    return save_figures(figures, out_dir, formats)


def _shown_runs(runs: list[RunResult]) -> list[RunResult]:
    """The best-of-grid run of the first seed for each (optimizer, depth)."""
    first: dict[tuple[str, int], RunResult] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        if run.best_of_grid:
            first.setdefault((run.optimizer, run.depth), run)
    return [first[key] for key in sorted(first)]


def _colours(runs: list[RunResult]) -> dict[str, str]:
    names = sorted({run.optimizer for run in runs})
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def _label(run: RunResult) -> str:
    return f"{run.optimizer} (η={run.lr:g})" + (" diverged" if run.diverged else "")


def _per_depth(runs: list[RunResult], depths: list[int], panel) -> Figure:
    figure, axes = subplots(1, len(depths), figsize=(4.2 * len(depths), 3.4), squeeze=False, sharey=True)
    colours = _colours(runs)
    for ax, depth in zip(axes[0], depths):
        for run in (r for r in runs if r.depth == depth):
            panel(ax, run, colours[run.optimizer])
        ax.set_title(f"depth {depth}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return figure


def _loss_panel(ax: Axes, run: RunResult, colour: str, units: str) -> None:
    loss = np.asarray(run.records["loss"], dtype=float)
    ax.plot(np.arange(len(loss)), loss, color=colour, lw=0.8, label=_label(run))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss, mini-batch ({units})")


def _accuracy_panel(ax: Axes, run: RunResult, colour: str) -> None:
    epochs = np.arange(1, len(run.records["epoch_train_accuracy"]) + 1)
    ax.plot(epochs, run.records["epoch_train_accuracy"], color=colour, marker=".", label=f"{_label(run)} train")
    ax.plot(epochs, run.records["epoch_test_accuracy"], color=colour, ls="--", marker=".", label="test")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")


def _per_optimizer(runs: list[RunResult], record: str, ylabel: str, depth: int) -> Figure:
    from matplotlib import colormaps

    figure, axes = subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False, sharey=True)
    for ax, run in zip(axes[0], runs):
        values = np.asarray(run.records[record], dtype=float)
        layers = len(run.layer_names)
        for i, name in enumerate(run.layer_names):
            ax.plot(values[:, i], color=colormaps["viridis"](i / max(layers - 1, 1)), lw=0.9,
                    label=name if i in (0, layers - 1) else None)
        ax.set_yscale("log")
        ax.set_title(_label(run), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="layer (first, last)", title_fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    figure.suptitle(f"{ylabel} per layer, depth {depth}", y=1.03)
    return figure


EDGE_OF_STABILITY = {"sgd": 0.0, "momentum": 1.0, "nesterov": 1.0}
"""Gradient descent's sharpness settles at 2/η, with heavy-ball momentum β at (2 + 2β)/η (Cohen et al.,
ICLR 2021, and its appendix on momentum); the factor of β per optimiser. Other optimisers have no such line."""


def _diagnostics(runs: list[RunResult], depth: int, units: str, momentum: float = 0.9) -> Figure:
    figure, (sharp, noise, update, trust) = subplots(1, 4, figsize=(19, 3.6))
    figure.subplots_adjust(wspace=0.35)
    colours = _colours(runs)
    for run in runs:
        steps = run.records["diagnostic_steps"]
        sharp.plot(steps, np.abs(run.records["sharpness"]), color=colours[run.optimizer], marker=".", label=_label(run))
        if run.optimizer in EDGE_OF_STABILITY and len(steps):
            rates = np.asarray(run.records["learning_rate"], dtype=float)[np.minimum(steps, len(run.records["loss"]) - 1)]
            beta = momentum * EDGE_OF_STABILITY[run.optimizer]
            sharp.plot(steps, (2 + 2 * beta) / rates, color=colours[run.optimizer], ls=":",
                       label=f"{run.optimizer}: (2 + 2β)/η, edge of stability" if beta else f"{run.optimizer}: 2/η")
        noise.plot(steps, run.records["gradient_noise_scale"], color=colours[run.optimizer], marker=".")
        ratio = np.asarray(run.records.get("step_over_breakdown", [np.nan] * len(steps)), dtype=float)
        if np.isfinite(ratio).any():
            trust.plot(steps, ratio, color=colours[run.optimizer], marker=".")
        spectral = np.asarray(run.records["relative_update_spectral"], dtype=float)
        taken = np.asarray(steps, dtype=int) < len(run.records["relative_update"])
        if spectral.size and np.isfinite(spectral).any(axis=1)[taken].any():
            frobenius = np.asarray(run.records["relative_update"], dtype=float)[np.asarray(steps)[taken]]
            update.plot(np.asarray(steps)[taken], np.nanmedian(spectral[taken], axis=1), color=colours[run.optimizer],
                        marker=".")
            update.plot(np.asarray(steps)[taken], np.median(frobenius, axis=1), color=colours[run.optimizer], ls="--")
    sharp.set(yscale="log", xlabel="step", ylabel=f"|top Hessian eigenvalue| ({units})",
              title=f"sharpness, depth {depth}")
    noise.set(yscale="log", xlabel="step", ylabel="B_simple (examples)", title="gradient noise scale")
    update.set(yscale="log", xlabel="step", ylabel="||ΔW_l|| / ||W_l||, median over layers",
               title="rel. update: spectral (solid), Frobenius (dashed)")
    sharp.legend(fontsize=7)
    trust.axhline(1.0, color="grey", linewidth=0.8)
    trust.set(yscale="log", xlabel="step", ylabel="own step / breakdown scale",
              title="own next step / breakdown scale")
    for ax in (sharp, noise, update, trust):
        ax.grid(alpha=0.3)
    return figure


def _depth_figure(runs: list[RunResult]) -> Figure:
    rows = summary_rows(runs)
    colours = _colours(runs)
    figure, ax = subplots(figsize=(5, 3.6))
    for optimizer in sorted({row.optimizer for row in rows}):
        mine = [row for row in rows if row.optimizer == optimizer]
        ax.plot([row.depth for row in mine], [row.train_accuracy for row in mine], color=colours[optimizer],
                marker="o", label=optimizer)
    ax.set(xscale="log", xlabel="depth (layers)", ylabel="final training accuracy", ylim=(0, 1.02),
           title="best of the learning-rate grid")
    depths = sorted({row.depth for row in rows})
    ax.minorticks_off()
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure
