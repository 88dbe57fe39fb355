"""`probe train` end to end on a tiny run: exit codes, file layout, `probe show`, stop and resume."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.training import run_queue

runner = CliRunner()
DATASETS = {  # the names of docs/hdf5-format.md, which files written by earlier versions also use
    "step", "loss", "learning_rate", "gradient_norm", "weight_norm", "relative_update", "epoch",
    "epoch_train_loss", "epoch_train_accuracy", "epoch_test_loss", "epoch_test_accuracy", "diagnostic_steps",
    "sharpness", "gradient_noise_scale", "spectral_shift", "relative_update_spectral", "step_over_breakdown", "effective_learning_rate",
    "intrinsic_learning_rate",
    "layer_names", "normalised_layer_names",
}
TINY = ["--dataset", "digits", "--depth", "2", "--width", "16", "--epochs", "1", "--batch-size", "128",
        "--diagnostics-every", "5", "--device", "cpu", "--no-plots"]


def test_train_writes_results_and_checkpoints_and_show_prints_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--optimizer", "sgd", "--optimizer", "adam", "--lr", "adam=0.01",
                                 *TINY, "--output", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "results.h5", "r") as h5:
        assert h5.attrs["kind"] == "train" and not h5.attrs["incomplete"]
        assert sorted(h5["runs"]) == ["adam_lr0.01_depth2_seed0", "sgd_lr0.1_depth2_seed0"]
        group = h5["runs/adam_lr0.01_depth2_seed0"]
        assert set(group) == DATASETS
        assert group["weight_norm"].shape == (12, 2) and group["loss"].shape == (12,)
        assert group["diagnostic_steps"][()].tolist() == [0, 5, 10]
        assert all("description" in group[name].attrs and "units" in group[name].attrs for name in group)
        assert group.attrs["lr"] == 0.01 and group.attrs["best_of_grid"] and h5.attrs["device"] == "cpu"
        assert h5.attrs["command_line"].startswith("probe train --optimizer sgd --optimizer adam")
    assert (out / "sgd_lr0.1_depth2_seed0" / "checkpoint.pt").is_file()
    shown = runner.invoke(app, ["show", str(out / "results.h5")])
    assert shown.exit_code == 0
    assert "adam" in shown.output and "sgd" in shown.output and "test acc" in shown.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--optimizer", "nosuch"], "Unknown optimizer"),
        (["--optimizer", "adam", "--lr", "adam=fast"], "needs a number"),
        (["--optimizer", "adam", "--lr", "fromage=0.1"], "not among the optimizers"),
        (["--lr", "=0.1"], "NAME=RATE"),
        (["--lr", "-1"], "positive"),
        (["--depths", "2,x"], "integers"),
        (["--schedule", "linear"], "schedule"),
        (["--epochs", "0"], "epochs"),
        (["--format", "gif", "--plots"], "format"),
        (["--device", "tpu"], "device"),
        (["--resume"], "Nothing to resume"),
    ],
)
def test_bad_options_exit_2_without_traceback(tmp_path: Path, options: list[str], message: str) -> None:
    result = runner.invoke(app, ["train", *TINY, "--output", str(tmp_path / "out"), *options])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_existing_results_need_overwrite(tmp_path: Path) -> None:
    (tmp_path / "results.h5").write_bytes(b"")
    result = runner.invoke(app, ["train", *TINY, "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--overwrite" in result.output


def test_stop_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def stop_after_three_steps() -> Iterator:
        polls = iter(range(1000))
        yield lambda: next(polls) >= 3

    monkeypatch.setattr(run_queue, "stop_on_interrupt", stop_after_three_steps)
    out = tmp_path / "run"
    stopped = runner.invoke(app, ["train", "--optimizer", "adam", *TINY, "--output", str(out)])
    assert stopped.exit_code == 130 and "--resume" in stopped.output
    with h5py.File(out / "results.h5", "r") as h5:
        assert h5.attrs["incomplete"] and h5["runs/adam_lr0.001_depth2_seed0/loss"].shape == (3,)
    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", "--output", str(out), "--no-plots"])
    assert resumed.exit_code == 0, resumed.output
    with h5py.File(out / "results.h5", "r") as h5:
        assert not h5.attrs["incomplete"] and h5["runs/adam_lr0.001_depth2_seed0/loss"].shape == (12,)


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_an_output_that_is_a_file_is_refused_before_training(tmp_path: Path, where: str) -> None:
    (tmp_path / "taken").write_text("mine")
    output = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "run"
    result = runner.invoke(app, ["train", *TINY, "--output", str(output)])
    assert result.exit_code == 2 and "is a file, not a folder" in " ".join(result.output.split())
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_clean_error_leaves_no_empty_output_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", *TINY, "--output", str(tmp_path / "new"), "--lr", "-1"])
    assert result.exit_code == 2
    assert not (tmp_path / "new").exists()


def test_help_lists_every_optimizer_of_the_table() -> None:
    from landscape_probe.optim import OPTIMIZER_NAMES

    shown = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert all(name in shown.output for name in OPTIMIZER_NAMES) and "module:Class" in shown.output
