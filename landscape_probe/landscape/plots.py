"""Figures of landscape results files, drawn from the file alone.

- interpolation: the loss (and accuracy) along α, with A and B marked, and the
  relative function change ||F(α) − F(0)|| / ||F(0)|| on a log scale beside DRT's prediction.

Example:
    >>> draw_interpolation(Path("a_to_b.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/a_to_b_interpolation.png')]
"""

from __future__ import annotations

from pathlib import Path

from landscape_probe.figures import new_figure, save_figures, subplots


def draw_interpolation(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw the figure of an interpolation results file into ``out_dir``; returns the files written."""
    from landscape_probe.landscape.interpolation import InterpolationResult

    result = InterpolationResult.load(results_path)
    figure, (left, right) = subplots(1, 2, figsize=(11, 4))
    figure.subplots_adjust(wspace=0.45)
    left.plot(result.alphas, result.loss, color="black", marker="o", markersize=3, label="loss")
    left.set_xlabel("α  (W = (1 − α)·W_A + α·W_B)")
    left.set_ylabel(f"loss ({result.loss_name})")
    for alpha, name in ((0.0, "A"), (1.0, "B")):
        left.axvline(alpha, color="grey", linewidth=0.6)
        left.annotate(name, (alpha, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom")
    if result.accuracy is not None:
        twin = left.twinx()
        twin.plot(result.alphas, result.accuracy, color="tab:green", linestyle="--", label="accuracy")
        twin.set_ylabel("accuracy", color="tab:green")
        twin.set_ylim(0, 1.05)
    left.set_title(f"barrier height {result.barrier_height:.3g}", fontsize=9, pad=14)
    positive = result.relative_function_change > 0
    right.semilogy(result.alphas[positive], result.relative_function_change[positive], color="black", marker="o",
                   markersize=3, label="measured")
    right.semilogy(result.alphas[positive], result.drt_prediction[positive], color="tab:red", linestyle="--",
                   label=f"DRT, Π(1 + |α|·κ_l) − 1 ({result.drt_step:.3g} at α = 1)")
    right.axvline(1.0, color="grey", linewidth=0.6)
    right.set_xlabel("α")
    right.set_ylabel("||F(α) − F(0)|| / ||F(0)||")
    right.legend(fontsize=7)
    figure.suptitle(f"{result.provenance.get('architecture', '')}: interpolation between two checkpoints",
                    fontsize=10)
    return save_figures({"interpolation": figure}, out_dir, formats, prefix=f"{Path(results_path).stem}_")


def draw_plane(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw the figures of a plane results file into ``out_dir``; returns the files written.

    ``loss_contour`` (filled contours with lines), ``loss_heatmap`` (log10 loss per cell), ``loss_surface``
    (3-D), and with ``measure gradient`` ``trust_region``: where the measured relative gradient change, deep
    relative trust and Euclidean trust each reach the threshold.
    """
    import numpy as np

    from landscape_probe.landscape.plane_result import PlaneResult

    result = PlaneResult.load(results_path)
    xs, ys = result.x_coordinates, result.y_coordinates
    loss = np.ma.masked_invalid(result.loss)
    title = (f"{result.provenance.get('architecture', '')}: d₁ {result.settings.get('direction_x')}, "
             f"d₂ {result.settings.get('direction_y')}" + ("" if result.complete else " (incomplete)"))
    figures = {}
    figure, axes = subplots(figsize=(6, 5))
    levels = _levels(loss)
    filled = axes.contourf(xs, ys, loss, levels=levels, cmap="viridis", extend="max")
    axes.contour(xs, ys, loss, levels=levels, colors="white", linewidths=0.4)
    figure.colorbar(filled, ax=axes, label=f"loss ({result.loss_name})")
    _mark_origin(axes, title)
    _draw_path(axes, result)
    figures["loss_contour"] = figure
    figure, axes = subplots(figsize=(6, 5))
    mesh = axes.pcolormesh(xs, ys, np.ma.log10(np.ma.masked_less_equal(loss, 0)), shading="nearest", cmap="magma")
    figure.colorbar(mesh, ax=axes, label="log₁₀ loss")
    _mark_origin(axes, title)
    _draw_path(axes, result)
    figures["loss_heatmap"] = figure
    figure = new_figure(figsize=(7, 5.5))
    axes3d = figure.add_subplot(projection="3d")
    grid_x, grid_y = np.meshgrid(xs, ys)
    axes3d.plot_surface(grid_x, grid_y, np.clip(result.loss, None, levels[-1]), cmap="viridis", linewidth=0)
    if result.settings.get("direction_x") == "pca":
        axes3d.set_title(title, fontsize=9)
    axes3d.set_xlabel("a (d₁)")
    axes3d.set_ylabel("b (d₂)")
    axes3d.set_zlabel("loss")
    axes3d.set_title(title, fontsize=9)
    figures["loss_surface"] = figure
    if result.relative_gradient_change is not None:
        figures["trust_region"] = _trust_region(result, title)
    return save_figures(figures, out_dir, formats, prefix=f"{Path(results_path).stem}_")


def _levels(values):
    """Contour levels from the lowest value to the 95th percentile (the rim of a wide plane can be huge)."""
    import numpy as np

    finite = np.asarray(values.compressed() if hasattr(values, "compressed") else values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.linspace(0.0, 1.0, 3)
    low, high = float(finite.min()), float(np.percentile(finite, 95))
    return np.linspace(low, high if high > low else low + 1.0, 25)


def _draw_path(axes, result) -> None:
    """The projected training path, when the plane is a trajectory's: a line through the saved steps."""
    if result.trajectory_coordinates is None:
        return
    a, b = result.trajectory_coordinates[:, 0], result.trajectory_coordinates[:, 1]
    share = result.explained_variance_ratio
    axes.plot(a, b, color="red", marker=".", markersize=4, linewidth=1,
              label=f"training path ({share[0]:.0%} + {share[1]:.0%} of its variance)")
    axes.plot(a[:1], b[:1], color="red", marker="o", markersize=6, linestyle="none", label="first saved step")
    axes.legend(fontsize=7, loc="best")


def _mark_origin(axes, title: str) -> None:
    axes.plot([0], [0], marker="+", color="red", markersize=12, mew=2)
    axes.set_xlabel("a (coefficient of d₁)")
    axes.set_ylabel("b (coefficient of d₂)")
    axes.set_title(title, fontsize=9)


def _trust_region(result, title: str):
    """Filled log10 relative gradient change, and the threshold contour of the measurement and each prediction."""
    import numpy as np
    from matplotlib.lines import Line2D

    xs, ys, threshold = result.x_coordinates, result.y_coordinates, result.settings.get("threshold", 1.0)
    measured = np.ma.masked_invalid(result.relative_gradient_change)
    figure, axes = subplots(figsize=(6.5, 5))
    positive = np.ma.masked_less_equal(measured, 0)
    mesh = axes.pcolormesh(xs, ys, np.ma.log10(positive), shading="nearest", cmap="Greys")
    figure.colorbar(mesh, ax=axes, label="log₁₀ relative gradient change (measured)")
    handles = []
    for values, color, style, label in ((measured, "black", "-", "measured"),
                                        (result.drt_prediction, "tab:red", "--", "deep relative trust"),
                                        (result.euclidean_gradient_prediction, "tab:blue", "--", "Euclidean trust")):
        values = np.ma.masked_invalid(values)
        if values.count() and values.min() < threshold < values.max():
            axes.contour(xs, ys, values, levels=[threshold], colors=color, linestyles=style, linewidths=1.6)
            handles.append(Line2D([], [], color=color, linestyle=style, label=label))
        else:
            handles.append(Line2D([], [], color=color, linestyle=style, label=f"{label}: never {threshold:g} here"))
    _mark_origin(axes, title)
    _draw_path(axes, result)
    axes.legend(handles=handles, fontsize=7, title=f"relative gradient change = {threshold:g}", title_fontsize=7)
    return figure
