"""The printed summary of a ``probe train`` results file (``probe train`` and ``probe show``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def print_summary(results_path: Path, console: Console) -> None:
    """Print the optimiser × depth table of a train results file.

    One row per optimiser and depth, for the best learning rate of the grid:
    final training loss (mean over seeds), final train and test accuracy, and
    how many seeds diverged.
    """
    from rich.table import Table

    from landscape_probe.training.store import read_train_results, summary_rows

    results = read_train_results(results_path)
    title = f"probe train: {results_path}" + (" [bold red](incomplete)[/]" if results.incomplete else "")
    table = Table(title=title)
    for column in ("optimizer", "depth", "lr", "final train loss", "train acc", "test acc", "diverged"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for row in summary_rows(results.runs):
        table.add_row(row.optimizer, str(row.depth), f"{row.lr:g}", f"{row.train_loss:.4g}",
                      f"{row.train_accuracy:.3f}", f"{row.test_accuracy:.3f}",
                      f"[red]{row.diverged}/{row.seeds}[/]" if row.diverged else f"0/{row.seeds}")
    console.print(table)
