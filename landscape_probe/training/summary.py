"""The printed summary of a ``probe train`` results file (``probe train`` and ``probe show``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    from rich.console import Console


def print_summary(results_path: Path, console: Console) -> None:
    """Print the optimiser × depth table of a train results file.

    One row per optimiser and depth, for the best learning rate of the grid:
    final training loss (mean over seeds), final train and test accuracy, and
    how many seeds diverged (see :meth:`~landscape_probe.training.result.TrainResult.table`).
    """
    from landscape_probe.training.result import TrainResult

    result = TrainResult.load(results_path)
    print_whole(console, result.table())
    auto = result.config.get("auto_learning_rates") or {}
    if auto:
        rates = "; ".join(f"{name} " + ", ".join(f"{rate:.3g} at depth {depth}" for depth, rate in by_depth.items())
                          for name, by_depth in auto.items())
        console.print(f"--lr auto (relative gradient change under {result.config.get('auto_lr_threshold', 0.5):g} "
                      f"at the starting weights, as probe advise): {rates}.", highlight=False)
