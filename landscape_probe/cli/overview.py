"""The top-level help page of ``probe``, drawn with rich's console and text only.

It looks like typer's rich help (usage, description, an Options panel, a
Commands panel), but is drawn from the commands' registrations, so no command
is built, and it needs only ``rich.console`` (which the commands' output loads
anyway): typer's help module brings ``rich.markdown`` (with markdown-it and
pygments) and ``rich.traceback``, about 130 ms, and rich's Panel and Table
another 10 ms or so to import and lay out, for features this page does not use.
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
    from rich.text import Text

    console = help_console()
    width = console.width
    usage = Text(group.get_usage(ctx), style="bold")
    usage.highlight_regex(r"^Usage: ", "yellow")
    lines = [Text(), Text(" ") + usage, Text()]
    if group.help:
        first, *rest = group.help.split("\n\n")
        description = _help_text(first.replace("\n", " ").strip())
        if rest:
            description.append("\n\n")
            description.append_text(_help_text("\n\n".join(rest), style="dim"))
        lines += [Text(" ") + line for line in description.wrap(console, width - 2)] + [Text()]
    options = [
        (", ".join([*param.opts, *param.secondary_opts]), param.help or "")
        for param in group.get_params(ctx)
        if not getattr(param, "hidden", False)
    ]
    name_width = max(len(name) for name, _ in [*options, *summaries.items()])
    lines += _panel("Options", options, name_width, width, console)
    lines += _panel("Commands", list(summaries.items()), name_width, width, console)
    console.print(Text("\n").join(lines), soft_wrap=True)


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
    """Help text in rich markup (the app's markup mode), with the options it names highlighted.

    Emoji codes such as ``:warning:`` are left as written: replacing them loads a table of 3 ms.
    """
    from rich.text import Text

    text = Text.from_markup(markup, style=style, emoji=False)
    text.highlight_regex(OPTION_PATTERN, OPTION_STYLE)
    return text


def _panel(title: str, rows: list[tuple[str, str]], name_width: int, width: int, console: Console) -> list[Text]:
    """The lines of a box ``width`` wide titled ``title``: names padded to ``name_width``, then their help, wrapped.

    Drawn line by line (rich's Panel and Table cost more to import and lay out than this whole page).
    """
    from rich.text import Text

    help_width = max(width - 4 - name_width - 2, 10)
    lines = [Text(f"╭─ {title} " + "─" * (width - len(title) - 5) + "╮", style="dim")]
    for name, help_text in rows:
        wrapped = _help_text(help_text).wrap(console, help_width) or [Text()]
        for i, piece in enumerate(wrapped):
            label = Text(name if i == 0 else "", style=OPTION_STYLE)
            piece.pad_right(help_width - piece.cell_len)
            lines.append(Text.assemble(("│ ", "dim"), label, " " * (name_width - label.cell_len + 2), piece, (" │", "dim")))
    lines.append(Text("╰" + "─" * (width - 2) + "╯", style="dim"))
    return lines
