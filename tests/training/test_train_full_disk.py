"""`probe train` on a full disk: a run's checkpoint is kept only together with the results file that records it.

Full disks are simulated by making writes raise ``OSError(ENOSPC)``; after the
failure the output folder holds either nothing or complete files whose results
file records exactly the runs whose checkpoints are there, and ``--resume``
finishes the grid.
"""

from __future__ import annotations

import errno
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner, Result

from cli_outcomes import one_sentence_exit_2
import torch

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.training.result import TrainResult

runner = CliRunner()
FAST = ["--dataset", "digits", "--depth", "2", "--width", "8", "--epochs", "1", "--batch-size", "512",
        "--diagnostics-every", "0", "--device", "cpu", "--no-plots"]
TWO_RUNS = ["--optimizer", "sgd", "--optimizer", "adam"]


def train(out: Path, *extra: str) -> Result:
    return runner.invoke(app, ["train", *TWO_RUNS, *FAST, "--output", str(out), *extra])


def disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_results_file_full_after_the_first_run_keeps_only_the_recorded_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    create_dataset = h5py.Group.create_dataset

    def full_once_results_exist(self, *args, **kwargs):
        if (out / "results.h5").exists():
            disk_full()
        return create_dataset(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_once_results_exist)
    text = one_sentence_exit_2(train(out))
    assert "Cannot save run adam_lr0.001_depth2_seed0: the disk is full" in text
    assert "the output folder is as it was before the run" in text
    assert files(out) == ["results.h5", "sgd_lr0.1_depth2_seed0", "sgd_lr0.1_depth2_seed0/checkpoint.pt"]
    recorded = TrainResult.load(out / "results.h5")
    assert [run.name for run in recorded.runs] == ["sgd_lr0.1_depth2_seed0"]
    loaded = load_checkpoint(out / "sgd_lr0.1_depth2_seed0" / "checkpoint.pt")
    assert sum(p.numel() for p in loaded.model.parameters()) == 64 * 8 + 8 + 8 * 10 + 10

    monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    resumed = train(out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(run.name for run in TrainResult.load(out / "results.h5").runs) == [
        "adam_lr0.001_depth2_seed0", "sgd_lr0.1_depth2_seed0",
    ]
    assert (out / "adam_lr0.001_depth2_seed0" / "checkpoint.pt").is_file()


def test_results_file_full_at_the_first_run_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(h5py.Group, "create_dataset", disk_full)
    out = tmp_path / "run"
    one_sentence_exit_2(train(out))
    assert not out.exists()


def test_checkpoint_write_full_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "save", disk_full)
    out = tmp_path / "run"
    text = one_sentence_exit_2(train(out))
    assert "Cannot save run sgd_lr0.1_depth2_seed0: the disk is full" in text
    assert not out.exists()
