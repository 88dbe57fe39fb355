"""The Typer app and what every command shares: error handling and common options.

Nothing here imports torch or rich: ``probe --help`` must stay fast
(``benchmarks/startup.py``). Command modules import heavy code inside their
command functions.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperOption

from landscape_probe import __version__
from landscape_probe.cli.on_demand import OnDemandGroup
from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from rich.console import Console

commands = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False)
"""Where each command module registers its command (``@commands.command()``); ``app`` builds one only when it is used."""


class ProbeGroup(OnDemandGroup):
    """The top-level group: ``probe --help`` lists the commands without building them."""

    registry = commands


app = typer.Typer(
    name="probe",
    cls=ProbeGroup,
    help=(
        "How far can you trust a gradient step? Perturb a PyTorch model's weights, measure how its "
        "function and gradient change, and compare with deep relative trust and Euclidean trust."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def console() -> Console:
    """A rich console on standard output for a command to print with.

    Made when called, not at import, so that ``probe --help`` does not load rich (0.2–0.35 × the time of
    ``python -c "import typer"``); it reads the terminal's width and colours as it is made.
    """
    from rich.console import Console

    return Console(emoji=False)  # a range like 1:-1:5 in a message is text, not the :-1: emoji


def error_console() -> Console:
    """A rich console on standard error, made when called (see :func:`console`)."""
    from rich.console import Console

    return Console(stderr=True, emoji=False)


def say_wrote(path: Any) -> None:
    """``wrote PATH`` on standard output, the path as it is (brackets in a file name are not markup)."""
    from rich.markup import escape

    console().print(f"wrote {escape(str(path))}", highlight=False)


_typer_value_column = getattr(TyperOption, "display_type_rich", None)


def _value_column(option: TyperOption, ctx: Any) -> str | None:
    """The value column of ``--help``: empty for a flag, ``<str>...`` for an option given once per value.

    Typer writes ``<bool>`` after flags, which take no value, and ``<list[str]>``
    for repeatable options, which take one value each time.
    """
    if option.is_flag:
        return None
    value = _typer_value_column(option, ctx)
    if option.multiple and value and value.startswith("<list[") and value.endswith("]>"):
        return f"<{value[len('<list['):-len(']>')]}>..."
    return value


if _typer_value_column is not None:  # typer versions without this hook print their own value column, left as it is
    TyperOption.display_type_rich = _value_column

DebugOption = Annotated[bool, typer.Option("--debug", help="Show the full traceback when something fails.")]
DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
]
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Allow loading pickled objects (whole nn.Modules). Only for files you trust: unpickling can run code.",
    ),
]
ArchOption = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Architecture for a bare state_dict or safetensors file: a zoo spec (mlp:depth=16,width=256) "
        "or an import path (mypkg.models:make_net).",
    ),
]
ArchKwargsOption = Annotated[
    str | None, typer.Option("--arch-kwargs", help="JSON keyword arguments for an --arch import path.")
]


def _version_callback(value: bool) -> None:
    if value:
        console().print(f"landscape_probe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """How far can you trust a gradient step on a real PyTorch model?"""
    from landscape_probe.distributed import check_command

    with user_errors(debug=False):
        check_command(ctx.invoked_subcommand)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn failures into one sentence on stderr and a non-zero exit.

    ``ProbeError`` (the user's to fix) exits with 2, and so do the operating
    system's refusals a user can fix (a full disk, a missing or read-only
    place, a file where a folder should be); Ctrl-C with 130; anything else is
    reported as an internal error with exit code 1. With ``debug`` the
    traceback is shown as well.
    """
    from rich.markup import escape

    try:
        yield
    except typer.Exit:
        raise
    except ProbeError as err:
        if debug:
            error_console().print_exception()
        error_console().print(f"[bold red]Error:[/] {escape(str(err))}", highlight=False)  # "pkg[extra]" is no markup
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        error_console().print("[bold red]Interrupted.[/]")
        raise typer.Exit(130) from None
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            error_console().print_exception()
        sentence = _system_refusal(err)
        if sentence is not None:
            error_console().print(f"[bold red]Error:[/] {escape(sentence)}", highlight=False)
            raise typer.Exit(2) from None
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        error_console().print(
            f"[bold red]Internal error:[/] {type(err).__name__}: {escape(message)}"
            + ("" if debug else " (run again with --debug for the traceback)"),
            highlight=False,
        )
        raise typer.Exit(1) from None


@contextlib.contextmanager
def results_kept(results_path: Path) -> Iterator[None]:
    """Around drawing the figures of a results file already saved: a user-fixable failure stays one sentence,
    which now also says that the results file is complete and how to draw the figures later."""
    try:
        yield
    except ProbeError as err:
        raise ProbeError(_with_results_kept(str(err), results_path)) from None
    except Exception as err:
        sentence = _system_refusal(err)
        if sentence is None:
            raise
        raise ProbeError(_with_results_kept(sentence, results_path)) from None


def _with_results_kept(sentence: str, results_path: Path) -> str:
    return (
        f"{sentence.rstrip().rstrip('.')}; the results file '{results_path}' is complete, "
        f"and 'probe plot {results_path}' draws the figures later."
    )


def _system_refusal(err: Exception) -> str | None:
    """One sentence for an operating-system refusal a user can fix (full disk, permissions, paths); None otherwise."""
    from landscape_probe.atomic import is_disk_full
    from landscape_probe.devices import is_out_of_memory

    if is_disk_full(err):
        return "The disk is full (no space left on device); free some space and run the command again."
    if is_out_of_memory(err):
        return ("The machine ran out of memory for this work; make it smaller (a smaller --probe-size or "
                "--chunk-size, --points-per-pass 1, fewer points, or a smaller batch for probe train) or run it "
                "on a device with more memory.")
    if not isinstance(err, OSError) or err.errno not in _USER_FIXABLE:
        return None
    where = f" '{err.filename}'" if err.filename else ""
    return f"Cannot use{where}: {_USER_FIXABLE[err.errno]}."


_USER_FIXABLE = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "a file of that name is in the way",
}


def parse_json_object(text: str | None, option: str, example: str) -> dict[str, Any] | None:
    """Read an option's JSON object (``--arch-kwargs '{"width": 64}'``); None stays None.

    Raises:
        ProbeError: for text that is not JSON, or JSON that is not an object (``example`` shows one).
    """
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProbeError(f"{option} is not valid JSON ({err.msg} at position {err.pos}).") from None
    if not isinstance(value, dict):
        raise ProbeError(f"{option} must be a JSON object such as '{example}'.")
    return value


def parse_arch_kwargs(text: str | None) -> dict[str, Any] | None:
    """Read ``--arch-kwargs`` as a JSON object."""
    return parse_json_object(text, "--arch-kwargs", '{"width": 64}')


def command_line(ctx: typer.Context) -> str:
    """The command as the user gave it, for the results file's provenance.

    Rebuilt from the parsed parameters (the arguments and every option set on
    the command line), so it is right however the command was invoked: from a
    shell, ``python -m landscape_probe`` or a test runner.
    """
    import shlex

    words = ["probe", ctx.info_name or ""]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[param.name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if param.param_type_name == "argument":
            words += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            flag = param.opts[0] if value else next(iter(param.secondary_opts), "")
            words += [flag] if flag else []
        else:
            for v in values:
                words += [param.opts[0], str(v)]
    return shlex.join(words)
