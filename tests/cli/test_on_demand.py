"""The top-level group builds a command only when it is used, and `probe --help` stays as typer would draw it.

The reference is the same app built eagerly, as plain typer builds it: one
Typer with the same callback and every registered command.
"""

import re
import subprocess
import sys

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.cli.app import commands
from landscape_probe.cli.on_demand import OnDemandGroup, command_name

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # no summary wraps, so each row of a panel is one line


def eager_app() -> typer.Typer:
    """``probe`` as plain typer builds it: every command's click parameters made with the group."""
    eager = typer.Typer(
        name="probe",
        help=app.info.help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    eager.registered_callback = app.registered_callback
    eager.registered_commands = list(commands.registered_commands)
    return eager


def panel_rows(output: str, title: str) -> dict[str, str]:
    """Name and help of each row of the panel titled ``title`` in typer's rich help (rows one line each)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} "))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))
    return dict(re.split(r"\s{2,}", line.strip("│ "), maxsplit=1) for line in lines[start + 1 : end])


def section_rows(output: str, title: str) -> dict[str, str]:
    """Name and help of each entry of the section ``title`` in click's plain help, wrapped lines joined."""
    lines = output.splitlines()
    start = lines.index(f"{title}:")
    rows: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        if line.startswith("   "):
            rows[name] += " " + line.strip()
        else:
            name, text = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            rows[name] = text
    return rows


def invoked(target: typer.Typer, args: list[str], env: dict[str, str] | None = None, **extra):
    return runner.invoke(target, args, env=env, **extra)


def test_top_level_help_lists_what_typer_lists():
    ours, theirs = invoked(app, ["--help"], WIDE), invoked(eager_app(), ["--help"], WIDE)
    assert ours.exit_code == theirs.exit_code == 0
    built = typer.main.get_command(eager_app()).commands
    expected = {name: command.help.split("\n\n")[0].strip() for name, command in built.items()}
    assert len(expected) == 10
    assert section_rows(ours.output, "Commands") == panel_rows(theirs.output, "Commands") == expected
    assert list(section_rows(ours.output, "Commands")) == list(expected)  # in the order they were registered
    assert section_rows(ours.output, "Options") == panel_rows(theirs.output, "Options")
    assert list(section_rows(ours.output, "Options")) == ["--version", "--help"]
    assert ours.output.split("Options:")[0].split() == theirs.output.split("╭")[0].split()
    assert ours.output.startswith("Usage: probe [OPTIONS] COMMAND [ARGS]...")


def test_bare_probe_prints_the_same_help_and_exits_2():
    ours, theirs = invoked(app, [], WIDE), invoked(eager_app(), [], WIDE)
    assert ours.exit_code == theirs.exit_code == 2
    assert ours.stdout == invoked(app, ["--help"], WIDE).stdout and not ours.stderr
    assert section_rows(ours.output, "Commands") == panel_rows(theirs.output, "Commands")


def test_long_summaries_wrap_to_the_terminal():
    narrow = invoked(app, ["--help"], terminal_width=50).output
    assert max(len(line) for line in narrow.splitlines()) <= 50
    assert "--help     Show this message and exit." in narrow
    assert section_rows(narrow, "Commands") == section_rows(invoked(app, ["--help"], WIDE).output, "Commands")


@pytest.fixture
def built_names(monkeypatch) -> list[str]:
    """The names of the commands whose click parameters are built from now on."""
    names: list[str] = []
    build = typer.main.get_command_from_info

    def recording(command_info, **kwargs):
        command = build(command_info, **kwargs)
        names.append(command.name)
        return command

    monkeypatch.setattr(typer.main, "get_command_from_info", recording)
    return names


@pytest.mark.parametrize(
    ("args", "built", "exit_code"),
    [
        (["--help"], [], 0),
        ([], [], 2),
        (["--version"], [], 0),
        (["slcie"], [], 2),
        (["slice", "--help"], ["slice"], 0),
        (["info"], ["info"], 2),
    ],
)
def test_only_the_command_used_is_built(built_names, args, built, exit_code):
    assert invoked(app, args).exit_code == exit_code
    assert built_names == built


def test_asking_whether_a_command_exists_builds_none(built_names):
    group = typer.main.get_command(app)
    assert "slice" in group.commands and "nonesuch" not in group.commands
    assert sorted(group.commands) == sorted(command_name(info) for info in commands.registered_commands)
    assert built_names == []


@pytest.mark.parametrize(
    "args",
    [["--version"], ["slcie"], ["--bogus"], ["info"], ["plot", "--bogus"]]
    + [[command_name(command_info), "--help"] for command_info in commands.registered_commands],
)
def test_everything_else_is_what_plain_typer_does(args):
    ours, theirs = invoked(app, args, {"COLUMNS": "120"}), invoked(eager_app(), args, {"COLUMNS": "120"})
    assert (ours.exit_code, ours.stdout, ours.stderr) == (theirs.exit_code, theirs.stdout, theirs.stderr)
    assert ours.output.strip()


def test_help_imports_neither_rich_nor_torch():
    unneeded = ("rich", "typer.rich_utils", "torch", "numpy", "h5py", "matplotlib")
    for args in (["--help"], []):
        code = (
            "import sys; from landscape_probe.cli import main; sys.argv = ['probe', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('loaded:', [m for m in {unneeded!r} if m in sys.modules])"
        )
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True).stdout
        assert "Commands:" in out and "slice" in out
        assert out.splitlines()[-1] == "loaded: []"


def test_commands_registered_on_the_groups_own_typer_are_refused():
    class Group(OnDemandGroup):
        registry = typer.Typer()

    stray = typer.Typer(cls=Group)

    @stray.command()
    def first() -> None:
        """One."""

    @stray.command()
    def second() -> None:
        """Two."""

    with pytest.raises(TypeError, match="register the commands on Group.registry"):
        typer.main.get_command(stray)
