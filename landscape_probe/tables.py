"""Printing the summary tables whole on a narrow terminal.

Rich fits a table to the console's width by cutting cells to an ellipsis
(``0.087…``) and, where the columns cannot wrap, by dropping a column that can;
a number cut short reads as a different number. :func:`print_whole` prints the
table at its own width when that is wider than the console, so that every cell
is whole and the terminal wraps the long lines instead.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> from rich.table import Table
    >>> table = Table()
    >>> for name in ("a", "b", "c"):
    ...     table.add_column(name)
    >>> table.add_row("0.0879912", "0.0803911", "0.0650211")
    >>> console = Console(file=io.StringIO(), width=20)
    >>> print_whole(console, table)
    >>> "0.0879912" in console.file.getvalue()
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def print_whole(console: Console, table: Table) -> None:
    """``console.print(table)``, at the table's own width where the console is narrower."""
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum  # unclamped
    width = console.width
    console.width = max(width, natural)  # print's own width= is clamped to the console's
    try:
        console.print(table)
    finally:
        console.width = width
