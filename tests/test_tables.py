"""Summary tables printed whole on a narrow terminal: no number cut to an ellipsis."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from landscape_probe.tables import print_whole


def per_layer_table() -> Table:
    table = Table(title="each layer's own block H_ll")
    for column in ("layer", "entries", "λ1", "λ2", "λ3", "λ4", "λ5", "trace", "± s.e."):
        table.add_column(column, justify="right")
    table.add_row("hidden.0.bias", "64", "0.1135", "0.08799", "0.08039", "0.06502", "0.05584", "0.5739", "0.019")
    return table


def printed(width: int, whole: bool) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    print_whole(console, per_layer_table()) if whole else console.print(per_layer_table())
    return console.file.getvalue()


def test_a_table_wider_than_the_terminal_keeps_every_cell_whole() -> None:
    cut = printed(80, whole=False)
    assert "…" in cut and "0.08799" not in cut  # what rich does by itself at 80 columns
    whole = printed(80, whole=True)
    assert "…" not in whole
    for cell in ("hidden.0.bias", "0.08799", "0.08039", "0.06502", "0.05584", "0.5739", "0.019"):
        assert cell in whole


def test_a_table_that_fits_is_printed_as_rich_prints_it() -> None:
    assert printed(200, whole=True) == printed(200, whole=False)
