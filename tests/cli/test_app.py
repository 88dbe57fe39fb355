"""The CLI shell: help, version, error handling, and keeping `probe --help` light."""

import subprocess
import sys

import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from landscape_probe import __version__
from landscape_probe.cli import app
from landscape_probe.cli.app import user_errors
from landscape_probe.devices import resolve_device
from landscape_probe.errors import ProbeError

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "slice", "train", "interpolate", "plane", "plot", "show", "export"):
        assert command in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_does_not_import_torch():
    heavy = ("torch", "numpy", "h5py", "matplotlib")
    code = f"import sys; from landscape_probe.cli import app; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [(ProbeError("The file is gone."), 2, "The file is gone."), (RuntimeError("boom"), 1, "RuntimeError: boom")],
)
def test_user_errors_exit_codes(error, code, text, capsys):
    with pytest.raises(typer.Exit) as excinfo:
        with user_errors(debug=False):
            raise error
    assert excinfo.value.exit_code == code
    err = capsys.readouterr().err
    assert text in err
    assert "Traceback" not in err


def test_running_out_of_memory_is_one_sentence_the_user_can_act_on(capsys):
    import torch

    cpu_refusal = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 40000000000000 bytes. Error code 12")
    for error in (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), cpu_refusal):
        with pytest.raises(typer.Exit) as excinfo:
            with user_errors(debug=False):
                raise error
        assert excinfo.value.exit_code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert err.startswith("Error: The machine ran out of memory") and "--points-per-pass 1" in err
        assert "Internal error" not in err and "Traceback" not in err


def test_user_errors_debug_shows_traceback(capsys):
    with pytest.raises(typer.Exit):
        with user_errors(debug=True):
            raise ProbeError("Visible.")
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("gpu", [False, True])
def test_resolve_device(gpu, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if gpu else 0)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if gpu else "cpu")
    if gpu:
        assert resolve_device("cuda:1") == torch.device("cuda", 1)
    else:
        with pytest.raises(ProbeError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ProbeError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(
    not hasattr(TyperOption, "display_type_rich"), reason="this typer has no value-column hook; its own help is kept"
)
def test_help_shows_no_value_after_flags_and_one_type_for_repeated_options():
    sliced = runner.invoke(app, ["slice", "--help"], terminal_width=200)
    layers = next(line for line in sliced.output.splitlines() if "--layers" in line and "sweep" in line)
    assert "<bool>" not in sliced.output and "<" not in layers
    assert "<float>" in sliced.output
    trained = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert "<list[" not in trained.output and "<str>..." in trained.output


def test_command_line_rebuilds_what_the_user_typed():
    from typing import Annotated

    from landscape_probe.cli.app import command_line

    demo = typer.Typer()
    seen: list[str] = []

    @demo.command()
    def run(
        ctx: typer.Context,
        path: str,
        name: Annotated[list[str], typer.Option()] = [],  # noqa: B006 - typer needs a literal default
        layers: bool = False,
        plots: Annotated[bool, typer.Option("--plots/--no-plots")] = True,
        size: int = 3,
    ) -> None:
        seen.append(command_line(ctx))

    @demo.callback()
    def _root() -> None:
        pass

    result = CliRunner().invoke(demo, ["run", "my file.pt", "--name", "a", "--name", "b", "--layers", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert seen == ["probe run 'my file.pt' --name a --name b --layers --no-plots"]



def test_what_the_user_typed_is_printed_as_typed_not_as_markup(tmp_path):
    """Brackets in a path are not rich markup, a range like 1:-1:5 is not the :-1: emoji, and --help shows the extra."""
    from pathlib import Path

    samples = Path(__file__).resolve().parents[2] / "sample_checkpoints"
    output = tmp_path / "o[red]x.h5"
    sliced = runner.invoke(app, ["slice", str(samples / "mlp2_digits.pt"), "--scales", "0.1", "--probe-size", "8",
                                 "--power-iterations", "2", "--device", "cpu", "--no-plots", "-o", str(output)])
    assert sliced.exit_code == 0 and output.is_file()
    assert f"wrote {output}" in "".join(sliced.output.split("\n"))  # rich may wrap a long path
    refused = runner.invoke(app, ["slice", str(samples / "mlp2_digits.pt"), "--scales", "0.1:-1:3", "--no-plots"])
    assert refused.exit_code == 2 and "0.1:-1:3" in " ".join(refused.stderr.split())
    helped = runner.invoke(app, ["train", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert "landscape_probe[tensorboard]" in helped.output
