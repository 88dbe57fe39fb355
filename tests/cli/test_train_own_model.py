"""`probe train` on your model and your data: --arch, --arch-kwargs, --data, --init-from; and slicing the result."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
from landscape_probe.checkpoints.load import load_checkpoint, save_checkpoint
from landscape_probe.cli import app
from landscape_probe.training import run_queue
from landscape_probe.training.api import train
from landscape_probe.training.result import TrainResult

runner = CliRunner()
TINY = ["--epochs", "1", "--batch-size", "16", "--diagnostics-every", "0", "--device", "cpu", "--no-plots"]
MODULE = '''
from torch import nn


def make_net(hidden=4, classes=2):
    return nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, classes))
'''


def _user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """A user's model module ``name`` in its own folder on sys.path; returns the import path of its factory."""
    folder = tmp_path / "code"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return f"{name}:make_net"


def _data_file(tmp_path: Path) -> Path:
    generator = np.random.default_rng(0)
    x = generator.normal(size=(40, 3)).astype(np.float32)
    path = tmp_path / "my.npz"
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    return path


def test_train_your_model_on_your_data_and_slice_it_trusting_its_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = _user_module(tmp_path, monkeypatch, "own_models_a")
    data, out = _data_file(tmp_path), tmp_path / "run"
    result = runner.invoke(app, ["train", "--arch", arch, "--arch-kwargs", '{"hidden": 5}', "--data", str(data),
                                 "--optimizer", "sgd", "--optimizer", "adam", *TINY, "--output", str(out)])
    assert result.exit_code == 0, result.output
    runs = TrainResult.load(out / "results.h5").runs
    assert [r.layer_names for r in runs] == [["0.weight", "2.weight"]] * 2
    assert runs[0].model_args == {"name": "custom", "factory": arch, "arch_kwargs": {"hidden": 5}}
    with h5py.File(out / "results.h5") as h5:
        assert h5["runs/sgd_lr0.1_depth2_seed0/loss"].shape == (2,)  # the file's 40 examples: 32 to train on, batch 16
    checkpoint = out / "sgd_lr0.1_depth2_seed0" / "checkpoint.pt"
    loaded = load_checkpoint(checkpoint, trust=True)
    assert loaded.model[0].weight.shape == (5, 3) and loaded.data["name"] == str(data)
    assert loaded.architecture.startswith(f'{arch}(**{{"hidden": 5}})')
    refused = one_sentence_exit_2(runner.invoke(app, ["slice", str(checkpoint), "--device", "cpu", "--no-plots"]))
    assert arch in refused and "--trust-checkpoint" in refused  # the file names code to run: the user must agree
    sliced = runner.invoke(app, ["slice", str(checkpoint), "--scales", "0.01,0.1", "--device", "cpu",
                                 "--trust-checkpoint", "--no-plots", "--output", str(tmp_path / "s.h5")])
    assert sliced.exit_code == 0, sliced.output
    assert "own_models_a:make_net" in " ".join(sliced.output.split())


def test_a_stopped_grid_of_your_own_model_resumes_from_its_recorded_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = _user_module(tmp_path, monkeypatch, "own_models_d")
    options = ["train", "--arch", arch, "--arch-kwargs", '{"hidden": 3}', "--data", str(_data_file(tmp_path)),
               "--optimizer", "adam", "--epochs", "3", "--batch-size", "8", "--diagnostics-every", "0",
               "--device", "cpu", "--no-plots"]

    @contextlib.contextmanager
    def stop_after_five_steps() -> Iterator:
        polls = iter(range(1000))
        yield lambda: next(polls) >= 5

    with monkeypatch.context() as patched:
        patched.setattr(run_queue, "stop_on_interrupt", stop_after_five_steps)
        assert runner.invoke(app, [*options, "--output", str(tmp_path / "cut")]).exit_code == 130
    resumed = runner.invoke(app, ["train", "--resume", "--output", str(tmp_path / "cut"), "--no-plots"])
    assert resumed.exit_code == 0, resumed.output
    whole = runner.invoke(app, [*options, "--output", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    cut, uncut = (TrainResult.load(tmp_path / name / "results.h5").runs[0] for name in ("cut", "whole"))
    assert cut.steps == uncut.steps == 12
    np.testing.assert_array_equal(cut.records["loss"], uncut.records["loss"])


def test_a_checkpoint_whose_import_path_does_not_resolve_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = _user_module(tmp_path, monkeypatch, "own_models_b")
    run = train(arch, _data_file(tmp_path), arch_kwargs={"hidden": 3}, optimizers="sgd", epochs=1, batch_size=16,
                diagnostics_every=0, device="cpu", output=tmp_path / "run")
    checkpoint = tmp_path / "run" / run.runs[0].name / "checkpoint.pt"
    (tmp_path / "code" / "own_models_b.py").rename(tmp_path / "code" / "moved_models.py")
    monkeypatch.delitem(sys.modules, "own_models_b")
    text = one_sentence_exit_2(runner.invoke(app, ["slice", str(checkpoint), "--device", "cpu", "--no-plots",
                                                   "--trust-checkpoint"]))
    assert "own_models_b:make_net" in text and "--arch" in text and "PYTHONPATH" in text
    sliced = runner.invoke(app, ["slice", str(checkpoint), "--arch", "moved_models:make_net", "--arch-kwargs",
                                 '{"hidden": 3}', "--scales", "0.1", "--device", "cpu", "--no-plots",
                                 "--output", str(tmp_path / "s.h5")])
    assert sliced.exit_code == 0, sliced.output


def test_a_lambda_model_is_recorded_and_slice_asks_for_arch(tmp_path: Path) -> None:
    run = train(lambda: torch.nn.Linear(3, 2), _data_file(tmp_path), optimizers="sgd", epochs=1, batch_size=16,
                diagnostics_every=0, device="cpu", output=tmp_path / "run")
    checkpoint = tmp_path / "run" / run.runs[0].name / "checkpoint.pt"
    text = one_sentence_exit_2(runner.invoke(app, ["slice", str(checkpoint), "--device", "cpu", "--no-plots"]))
    assert "<lambda>" in text and "cannot be imported by name" in text and "--arch module:function" in text


def test_init_from_starts_every_optimiser_from_the_checkpoints_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = _user_module(tmp_path, monkeypatch, "own_models_c")
    torch.manual_seed(5)
    pretrained = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    start = tmp_path / "start.pt"
    torch.save(pretrained.state_dict(), start)  # bare weights: any format probe info reads will do
    result = runner.invoke(app, ["train", "--arch", arch, "--init-from", str(start), "--data",
                                 str(_data_file(tmp_path)), "--optimizer", "sgd", "--optimizer", "fromage",
                                 "--seeds", "0,1", *TINY, "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    runs = TrainResult.load(tmp_path / "run" / "results.h5").runs
    first_norms = {tuple(np.round(r.records["weight_norm"][0], 6)) for r in runs}
    expected = tuple(np.round([float(pretrained[0].weight.norm()), float(pretrained[2].weight.norm())], 6))
    assert first_norms == {expected}  # before its first step every run holds the pretrained weights
    fresh = train(arch, _data_file(tmp_path), optimizers="sgd", epochs=1, batch_size=16, diagnostics_every=0,
                  device="cpu")
    assert tuple(np.round(fresh.runs[0].records["weight_norm"][0], 6)) != expected


def test_init_from_another_architecture_is_refused_in_one_sentence(tmp_path: Path, tiny_checkpoint: Path) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["train", "--init-from", str(tiny_checkpoint), "--depth", "2",
                                                   "--width", "16", *TINY, "--output", str(tmp_path / "run")]))
    assert "--init-from" in text and "another architecture" in text and "shaped differently" in text
    assert not (tmp_path / "run" / "results.h5").exists()


def test_init_from_a_zoo_checkpoint_fine_tunes_it(tmp_path: Path) -> None:
    first = train("mlp:width=8", "digits", optimizers="sgd", depth=2, epochs=1, batch_size=256,
                  diagnostics_every=0, device="cpu", output=tmp_path / "a")
    checkpoint = tmp_path / "a" / first.runs[0].name / "checkpoint.pt"
    again = train("mlp:width=8", "digits", optimizers="adam", depth=2, epochs=1, batch_size=256,
                  diagnostics_every=0, device="cpu", init_from=checkpoint)
    final = load_checkpoint(checkpoint).model
    np.testing.assert_allclose(again.runs[0].records["weight_norm"][0],
                               [float(final.hidden[0].weight.norm()), float(final.output.weight.norm())], rtol=1e-6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--arch", "no_such_module_xyz:make"], "Cannot import module 'no_such_module_xyz'"),
        (["--arch", "math:pi"], "no callable 'pi'"),
        (["--arch-kwargs", '{"width": 3}'], "import path"),
        (["--arch", "mlp", "--model", "cnn"], "--model for a zoo model, or --arch"),
        (["--data", "digits", "--dataset", "digits"], "--data"),
        (["--data", "nosuch.npz"], "nosuch.npz"),
        (["--init-from", "missing.pt"], "missing.pt"),
    ],
)
def test_bad_model_data_or_start_is_one_sentence(tmp_path: Path, options: list[str], message: str) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["train", *options, *TINY, "--output", str(tmp_path / "run")]))
    assert message in text


def test_the_old_dataset_option_still_works_and_is_hidden(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--dataset", "digits", "--depth", "2", "--width", "8", *TINY,
                                 "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["train", "--help"], terminal_width=200).output
    assert "--data " in shown and "--dataset" not in shown and "--init-from" in shown


def test_a_self_describing_zoo_checkpoint_ignores_a_missing_module(tmp_path: Path, tiny_model, tiny_args) -> None:
    path = tmp_path / "zoo.pt"
    save_checkpoint(path, tiny_model, tiny_args)
    assert load_checkpoint(path).model_args == tiny_args
