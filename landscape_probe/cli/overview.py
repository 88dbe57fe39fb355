"""The top-level help page of ``probe``, drawn with the few rich modules it needs.

It looks like typer's rich help (usage, description, an Options panel, a
Commands panel), but is drawn from the commands' registrations, so no command
is built, and imports ``rich.panel`` and ``rich.table`` only: typer's help
module brings ``rich.markdown`` (with markdown-it and pygments) and
``rich.traceback``, about 130 ms, for features this page does not use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from rich.text import Text
    from typer.core import TyperGroup

OPTION_STYLE = "bold cyan"
"""Options and command names, as in typer's help."""

OPTION_PATTERN = r"(?<![\w-])--?[A-Za-z][\w-]*"
"""An option named in a help text (``--csv``, ``-o``), highlighted as typer's help does."""


def print_overview(group: TyperGroup, ctx: typer.Context, summaries: dict[str, str]) -> None:
    """Print the help of ``group``: its usage, description and options, and each command with its summary.

    Args:
        group: The top-level group (its usage line, help text and own options are shown).
        ctx: Its context.
        summaries: One-line summary by command name, in the order to list them.
    """
    from rich.padding import Padding
    from rich.text import Text

    console = help_console()
    usage = Text(group.get_usage(ctx))
    usage.highlight_regex(r"^Usage: ", "yellow")
    console.print(Padding(usage, 1), style="bold")
    if group.help:
        first, *rest = group.help.split("\n\n")
        description = _help_text(first.replace("\n", " ").strip())
        if rest:
            description.append("\n\n")
            description.append_text(_help_text("\n\n".join(rest), style="dim"))
        console.print(Padding(description, (0, 1, 1, 1)))
    options = [
        (", ".join([*param.opts, *param.secondary_opts]), param.help or "")
        for param in group.get_params(ctx)
        if not getattr(param, "hidden", False)
    ]
    width = max(len(name) for name, _ in [*options, *summaries.items()])
    console.print(_panel("Options", options, width))
    console.print(_panel("Commands", list(summaries.items()), width))


def help_console() -> Console:
    """A console set up as typer's help console: colour forced by ``GITHUB_ACTIONS``, ``FORCE_COLOR`` or
    ``PY_COLORS`` and turned off by ``_TYPER_FORCE_DISABLE_TERMINAL``, width ``TERMINAL_WIDTH`` when set."""
    from rich.console import Console

    force = True if any(os.environ.get(name) for name in ("GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS")) else None
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    width = os.environ.get("TERMINAL_WIDTH")
    return Console(force_terminal=force, width=int(width) if width else None)


def _help_text(markup: str, style: str = "") -> Text:
    """Help text in rich markup (the app's markup mode), with the options it names highlighted."""
    from rich.text import Text

    text = Text.from_markup(markup, style=style)
    text.highlight_regex(OPTION_PATTERN, OPTION_STYLE)
    return text


def _panel(title: str, rows: list[tuple[str, str]], width: int) -> object:
    """A titled box of two columns: names of ``width`` characters (so that panels line up) and their help."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, expand=True, padding=(0, 1), pad_edge=False)
    table.add_column(style=OPTION_STYLE, no_wrap=True, width=width)
    table.add_column(ratio=1)
    for name, help_text in rows:
        table.add_row(Text(name), _help_text(help_text))
    return Panel(table, title=title, title_align="left", border_style="dim")
