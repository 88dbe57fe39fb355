"""Figures of landscape results files, drawn from the file alone.

- interpolation: the loss (and accuracy) along α, with A and B marked, and the
  relative function change ||F(α) − F(0)|| / ||F(0)|| on a log scale beside DRT's prediction.

Example:
    >>> draw_interpolation(Path("a_to_b.h5"), Path("plots"), ("png",))  # doctest: +SKIP
    [PosixPath('plots/a_to_b_interpolation.png')]
"""

from __future__ import annotations

from pathlib import Path

from landscape_probe.figures import headless, save_figures


def draw_interpolation(results_path: Path, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    """Draw the figure of an interpolation results file into ``out_dir``; returns the files written."""
    import matplotlib.pyplot as plt

    from landscape_probe.landscape.interpolation import InterpolationResult

    headless()
    result = InterpolationResult.load(results_path)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
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
