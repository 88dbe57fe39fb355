"""Does ``probe train --lr auto`` land within one grid step of the best rate ``--lr-grid`` finds?

Reads results files of ``probe train`` (see docs/reproduce.md §6): one or more
grids (``--lr-grid``, each rate a decade from the next) and one ``--lr auto``
run of the same optimisers, depths and seeds. For every optimiser and depth it
prints the auto rate, the best rate of the grids (lowest mean final training
loss over seeds, as ``probe show`` marks it), their distance in decades,
log10(auto / best), and the final training loss and test accuracy of both.
The auto run counts as within one grid step when that distance is at most 1.

With ``--figure FILE`` it also draws, per optimiser, the final training loss
of every grid rate against the rate (one line per depth) with the auto rate's
run marked.

Run: ``python experiments/auto_lr_vs_grid.py runs/auto/results.h5 runs/grid/results.h5 [more grids] [--figure F.png]``
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

import landscape_probe as lp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("auto", type=Path, help="results.h5 of the --lr auto run")
    parser.add_argument("grids", type=Path, nargs="+", help="results.h5 of the --lr-grid runs")
    parser.add_argument("--figure", type=Path, help="draw the final loss against the rate into this file")
    args = parser.parse_args()
    auto = _by_rate([lp.load(args.auto)])
    grid = _by_rate([lp.load(path) for path in args.grids])
    print("| optimizer | depth | auto η | best grid η | log10(auto/best) | within one step | "
          "auto: loss / test acc | best grid: loss / test acc |")
    print("|---|---|---|---|---|---|---|---|")
    for (optimizer, depth), rates in sorted(auto.items(), key=lambda item: (item[0][0], item[0][1])):
        (auto_lr, (auto_loss, auto_acc)), = rates.items()
        best_lr = min(grid[optimizer, depth], key=lambda lr: _finite(grid[optimizer, depth][lr][0]))
        best_loss, best_acc = grid[optimizer, depth][best_lr]
        decades = math.log10(auto_lr / best_lr)
        print(f"| {optimizer} | {depth} | {auto_lr:.3g} | {best_lr:.3g} | {decades:+.2f} | "
              f"{'yes' if abs(decades) <= 1 + 1e-9 else 'no'} | {auto_loss:.3g} / {auto_acc:.3f} | "
              f"{best_loss:.3g} / {best_acc:.3f} |")
    if args.figure:
        _draw(auto, grid, args.figure)


def _draw(auto: dict, grid: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optimizers = sorted({optimizer for optimizer, _ in auto})
    figure, axes = plt.subplots(1, len(optimizers), figsize=(4.2 * len(optimizers), 3.6), squeeze=False)
    for ax, optimizer in zip(axes[0], optimizers):
        depths = sorted(depth for name, depth in auto if name == optimizer)
        for colour, depth in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], depths):
            rates = sorted(grid[optimizer, depth])
            ax.plot(rates, [grid[optimizer, depth][lr][0] for lr in rates], "o-", color=colour, ms=3,
                    label=f"depth {depth}")
            ((auto_lr, (auto_loss, _)),) = auto[optimizer, depth].items()
            ax.plot([auto_lr], [auto_loss], "*", color=colour, ms=13, mec="black")
        ax.set(xscale="log", yscale="log", xlabel="learning rate", title=f"{optimizer} (★ = --lr auto)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("final training loss (nats; diverged not shown)")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def _by_rate(results: list) -> dict[tuple[str, int], dict[float, tuple[float, float]]]:
    """(optimizer, depth) → rate → (mean final training loss, mean final test accuracy) over seeds."""
    runs: dict[tuple[str, int, float], list] = defaultdict(list)
    for result in results:
        for run in result.runs:
            runs[run.optimizer, run.depth, run.lr].append(run)
    table: dict[tuple[str, int], dict[float, tuple[float, float]]] = defaultdict(dict)
    for (optimizer, depth, lr), seeds in runs.items():
        table[optimizer, depth][lr] = (float(np.mean([_finite(r.final_train_loss) for r in seeds])),
                                       float(np.mean([r.final_test_accuracy for r in seeds])))
    return table


def _finite(loss: float) -> float:
    """A diverged run's loss counts as infinite, as ``best_of_grid`` counts it."""
    return loss if math.isfinite(loss) else math.inf


if __name__ == "__main__":
    main()
