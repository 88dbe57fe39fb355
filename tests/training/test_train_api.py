"""``lp.train``: the same arrays as `probe train`, any data, zoo specs and a user's own model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.training.api import train
from landscape_probe.training.records import RECORDED
from landscape_probe.training.result import TrainResult

TINY = dict(depth=2, width=16, epochs=1, batch_size=128, diagnostics_every=5, device="cpu")


def make_net() -> nn.Module:
    """A user's own model, importable as --arch test_train_api:make_net."""
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2))


def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=generator)
    return x, (x[:, 0] > 0).long()


def test_probe_train_and_lp_train_give_identical_arrays(tmp_path: Path) -> None:
    cli = CliRunner().invoke(app, ["train", "--optimizer", "sgd", "--optimizer", "fromage", "--depth", "2",
                                   "--width", "16", "--epochs", "1", "--batch-size", "128",
                                   "--diagnostics-every", "5", "--device", "cpu", "--no-plots",
                                   "--output", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    api = train("mlp", "digits", optimizers=("sgd", "fromage"), **TINY, output=tmp_path / "api")
    assert api.path == tmp_path / "api" / "results.h5"
    from_cli = TrainResult.load(tmp_path / "cli" / "results.h5")
    from_api = TrainResult.load(api.path)
    assert [r.name for r in from_cli.runs] == [r.name for r in from_api.runs] == sorted(r.name for r in api.runs)
    assert from_cli.config == from_api.config
    for a, b in zip(from_cli.runs, from_api.runs):
        for name in RECORDED:
            np.testing.assert_array_equal(a.records[name], b.records[name], err_msg=name)
    assert (tmp_path / "api" / "sgd_lr0.1_depth2_seed0" / "checkpoint.pt").is_file()


def test_a_zoo_spec_sets_the_architecture_and_nothing_is_written_without_output(tmp_path: Path) -> None:
    result = train("mlp:depth=3,width=8", _tensors(), optimizers="adam", lr=0.01, epochs=2, batch_size=16,
                   diagnostics_every=0, device="cpu")
    (run,) = result.runs
    assert run.name == "adam_lr0.01_depth3_seed0" and result.path is None
    assert run.model_args["width"] == 8 and run.model_args["in_features"] == 3
    assert run.records["loss"].shape == (6,) and run.records["epoch_test_loss"].shape == (2,)
    assert result.loss_units == "nats"


def test_a_users_model_trains_and_its_checkpoint_rebuilds_it_by_import_path(tmp_path: Path) -> None:
    result = train(make_net, _tensors(), optimizers=("sgd",), epochs=1, batch_size=16, diagnostics_every=0,
                   device="cpu", output=tmp_path)
    (run,) = result.runs
    assert run.depth == 3 and run.layer_names == ["0.weight", "2.weight", "4.weight"]
    assert run.model_args == {"name": "custom", "factory": "test_train_api:make_net", "arch_kwargs": {}}
    checkpoint = tmp_path / run.name / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["model_args"]["factory"] == "test_train_api:make_net"
    run.model.eval()
    x, _ = _tensors()
    built = (load_checkpoint(checkpoint, trust=True), load_checkpoint(checkpoint, arch="test_train_api:make_net"))
    for loaded in built:
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), run.model(x), rtol=0, atol=0)


def test_mse_losses_are_in_squared_target_units() -> None:
    x, _ = _tensors()
    result = train("mlp:width=4", (x, x[:, :1] * 3.0), optimizers="sgd", depth=2, epochs=1, batch_size=48,
                   diagnostics_every=0, device="cpu")
    assert result.loss_units == "squared target units"
    assert np.isnan(result.runs[0].records["epoch_train_accuracy"]).all()


@pytest.mark.parametrize(
    ("model", "keywords", "message"),
    [
        (make_net(), {}, "function that builds the model"),
        (make_net, {"depths": (2, 4)}, "depths needs a zoo model"),
        ("mlp:depth=3", {"depths": (2, 4)}, "sets a depth"),
        ("mlp", {"optimizers": "adam", "lr": {"sgd": 0.1}}, "not among the optimizers"),
        ("mlp", {"optimizers": "nosuch"}, "Unknown optimizer"),
        ("mlp", {"lr": -1.0}, "positive"),
        (42, {}, "zoo spec"),
    ],
)
def test_bad_arguments_raise_one_clear_error(model: object, keywords: dict, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        train(model, _tensors(), epochs=1, device="cpu", **keywords)


def test_resume_needs_an_output_folder() -> None:
    with pytest.raises(ProbeError, match="output folder"):
        train(resume=True)


def test_the_results_file_says_incomplete_until_the_last_planned_run(tmp_path: Path, monkeypatch) -> None:
    """A grid killed between two runs leaves a file marked incomplete, so that --resume takes it up."""
    from landscape_probe.training import grid

    seen: list[tuple[int, bool]] = []
    save = grid._save_with_results

    def recording(run, folder, config, dataset, result, results_path):
        seen.append((len(result.runs), result.incomplete))
        save(run, folder, config, dataset, result, results_path)

    monkeypatch.setattr(grid, "_save_with_results", recording)
    done = train("mlp", "digits", optimizers=("sgd", "adam"), output=tmp_path / "grid", **{**TINY, "diagnostics_every": 0})
    assert seen == [(1, True), (2, False)]
    assert not done.incomplete and not TrainResult.load(tmp_path / "grid" / "results.h5").incomplete
