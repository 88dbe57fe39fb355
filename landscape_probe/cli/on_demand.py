"""The top-level ``probe`` group: a subcommand is built when it is used, and ``probe --help`` builds none.

Typer turns every command's signature into click parameters when it builds a
group (about 0.1 s for the ten commands here, on this machine), and its rich
help loads rich, ``rich.markdown`` and ``rich.traceback`` (more than ``import
typer`` itself), yet the top-level help needs only the commands' names and
one-line summaries. So the commands register on a Typer of their own
(``commands`` in :mod:`landscape_probe.cli.app`); this group looks a command up
there and builds it only on first use, exactly as typer would have built it,
and its own help is click's plain help with the summaries read from the
registrations. ``probe CMD --help``, errors and every command run as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import MarkupMode, TyperCommand, TyperGroup
from typer.models import CommandInfo

if TYPE_CHECKING:
    from typer._click.formatting import HelpFormatter


def command_name(info: CommandInfo) -> str:
    """The name typer gives a registered command: the one given to ``command()``, else the function's, dashed."""
    return info.name or typer.main.get_command_name(info.callback.__name__)


def summary(info: CommandInfo) -> str:
    """A command's one-line summary in its group's help: the first paragraph of its help text.

    The help text is what typer would use: ``short_help``, else ``help``, else the function's docstring.
    """
    text = info.short_help or info.help or inspect.getdoc(info.callback) or ""
    return inspect.cleandoc(text).split("\n\n")[0].strip()


class CommandsOnDemand(Mapping[str, TyperCommand]):
    """A group's commands by name, each built from its registration when first looked up.

    Listing the names (``iter``, ``keys``, ``in``) builds nothing; ``values()``
    and ``items()`` build every command.
    """

    def __init__(self, registry: typer.Typer, rich_markup_mode: MarkupMode) -> None:
        self.registry = registry
        self.rich_markup_mode = rich_markup_mode
        self.infos = {command_name(info): info for info in registry.registered_commands}
        self.built: dict[str, TyperCommand] = {}

    def __getitem__(self, name: str) -> TyperCommand:
        if name not in self.built:
            self.built[name] = typer.main.get_command_from_info(
                self.infos[name],
                pretty_exceptions_short=self.registry.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
            )
        return self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __contains__(self, name: object) -> bool:
        return name in self.infos  # Mapping's own would look the command up, and so build it

    def __len__(self) -> int:
        return len(self.infos)


class OnDemandGroup(TyperGroup):
    """A Typer group whose commands come from ``registry`` and are built on first use.

    Use it as ``typer.Typer(cls=...)`` through a subclass that names the
    registry; the Typer given ``cls`` keeps the callback and the group's own
    options, and registers no commands itself.
    """

    registry: ClassVar[typer.Typer]

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        if self.commands:
            raise TypeError(f"register the commands on {type(self).__name__}.registry, not on the group's Typer")
        self.commands: CommandsOnDemand = CommandsOnDemand(self.registry, self.rich_markup_mode)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        """The commands' names in the order they were registered, building none."""
        return list(self.commands)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """As click's, except that a bare ``probe`` prints the top-level help on standard output and exits with 2.

        Click raises ``NoArgsIsHelpError`` there, whose handler in typer imports
        typer's rich help module only to ignore that error.
        """
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        """Click's plain help (usage, help text, options, commands), not typer's rich help.

        Importing ``rich.console`` alone adds 0.2–0.35 × the time of a process
        that imports typer and nothing else, and typer's help module adds ``rich.markdown`` (with markdown-it
        and pygments) and ``rich.traceback``; ``probe --help`` is to start in
        at most 1.5 times ``import typer`` (``benchmarks/startup.py``).
        """
        super(TyperGroup, self).format_help(ctx, formatter)  # click's own: TyperGroup's would draw with rich

    def format_commands(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        """Each visible command with its summary, from the registrations: none is built."""
        rows = [(name, summary(info)) for name, info in self.commands.infos.items() if not info.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
