"""Figures are written atomically; when drawing fails after the results file was saved, that file stays complete.

A full disk is simulated by a ``savefig`` that writes part of the file and then
raises ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
from matplotlib.figure import Figure

import landscape_probe as lp
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.figures import save_figures

matplotlib.use("Agg")
runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[1] / "sample_checkpoints"


def half_written_then_full(self: Figure, target: object, *args: object, **kwargs: object) -> None:
    Path(target).write_bytes(b"\x89PNG half")
    raise OSError(errno.ENOSPC, "No space left on device")


def fails_on_second_file(original):
    calls = []

    def savefig(self: Figure, target: object, *args: object, **kwargs: object) -> None:
        calls.append(target)
        if len(calls) == 2:
            half_written_then_full(self, target)
        original(self, target, *args, **kwargs)

    return savefig


def test_save_figures_leaves_only_complete_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Figure, "savefig", fails_on_second_file(Figure.savefig))
    figures = {name: plt.figure() for name in ("a", "b", "c")}
    with pytest.raises(ProbeError, match=r"Cannot write '.*b\.png': the disk is full, so nothing was written\."):
        save_figures(figures, tmp_path, ("png",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(plt.fignum_exists(f.number) for f in figures.values())


def test_save_figures_writes_the_format_asked_despite_the_temporary_name(tmp_path: Path) -> None:
    written = save_figures({"f": plt.figure()}, tmp_path, ("png", "svg", "pdf"))
    assert [p.name for p in written] == ["f.png", "f.svg", "f.pdf"]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:500]
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png", "f.svg"]


def test_slice_whose_figures_fail_keeps_the_complete_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Figure, "savefig", half_written_then_full)
    out, plots = tmp_path / "s.h5", tmp_path / "plots"
    result = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--probe-size", "8", "--scales", "0.01,0.1",
                                     "--power-iterations", "1", "--device", "cpu", "--output", str(out), "--plots", str(plots)])
    text = one_sentence_exit_2(result)
    assert "the disk is full, so nothing was written" in text
    assert f"the results file '{out}' is complete, and 'probe plot {out}' draws the figures later." in text
    assert lp.load(out).scales.tolist() == [0.01, 0.1]
    assert list(plots.iterdir()) == []


def test_train_whose_figures_fail_keeps_the_complete_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Figure, "savefig", half_written_then_full)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--optimizer", "sgd", "--dataset", "digits", "--depth", "2", "--width", "8",
                                     "--epochs", "1", "--batch-size", "512", "--diagnostics-every", "0", "--device", "cpu",
                                     "--output", str(out)])
    text = one_sentence_exit_2(result)
    assert f"the results file '{out / 'results.h5'}' is complete" in text
    assert [run.name for run in lp.load(out / "results.h5").runs] == ["sgd_lr0.1_depth2_seed0"]
    assert not (out / "plots").exists() or list((out / "plots").iterdir()) == []
