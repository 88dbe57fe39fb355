"""``probe train`` of a model returning a dict or a tuple: it trains the chosen output, records it, and
``probe slice`` / ``probe hessian`` of its checkpoints reuse it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.slicing.result import SliceResult
from landscape_probe.training.api import train
from landscape_probe.training.records import RECORDED
from landscape_probe.training.result import TrainResult


class Net(nn.Module):
    """An MLP whose logits come alone, in ``{"logits", "features"}``, or second in ``(aux, logits)``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.Tanh())
        self.head = nn.Linear(8, 2)
        self.kind = kind

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        logits = self.head(features)
        if self.kind == "dict":
            return {"logits": logits, "features": features}
        if self.kind == "pair":
            return features, logits
        return logits


def make_plain() -> nn.Module:
    return Net("plain")


def make_dict() -> nn.Module:
    return Net("dict")


def make_pair() -> nn.Module:
    return Net("pair")


def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=generator)
    return x, (x[:, 0] > 0).long()


def _data_file(folder: Path) -> str:
    x, y = _tensors()
    np.savez(folder / "data.npz", x=x.numpy(), y=y.numpy())
    return str(folder / "data.npz")


# diagnostics every 2 steps, the optimiser's own step among them: every path the loop calls the model on
SETTINGS = dict(optimizers=("sgd", "fromage", "kfac"), epochs=2, batch_size=16, diagnostics_every=2,
                device="cpu")


@pytest.mark.parametrize(("factory", "key", "recorded"), [(make_dict, None, "logits"), (make_pair, "1", "1")])
def test_training_on_the_chosen_output_is_training_the_plain_model_bit_for_bit(
        tmp_path: Path, factory, key: str | None, recorded: str) -> None:
    plain = train(make_plain, _tensors(), **SETTINGS)
    wrapped = train(factory, _tensors(), output_key=key, **SETTINGS, output=tmp_path)
    assert plain.config["output_key"] == "" and wrapped.config["output_key"] == recorded
    assert TrainResult.load(wrapped.path).config["output_key"] == recorded
    for a, b in zip(plain.runs, wrapped.runs, strict=True):
        assert a.name == b.name
        for name in RECORDED:
            np.testing.assert_array_equal(a.records[name], b.records[name], err_msg=f"{a.name} {name}")
        for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    checkpoint = tmp_path / wrapped.runs[0].name / "checkpoint.pt"
    assert load_checkpoint(checkpoint, trust=True).config["output_key"] == recorded  # its builder: our own code


def test_slice_and_hessian_of_a_run_checkpoint_take_the_output_it_was_trained_on(tmp_path: Path) -> None:
    result = train(make_pair, _tensors(), output_key="1", optimizers="sgd", epochs=1, batch_size=16,
                   diagnostics_every=0, device="cpu", output=tmp_path / "run")
    checkpoint = str(tmp_path / "run" / result.runs[0].name / "checkpoint.pt")
    runner = CliRunner()
    data = _data_file(tmp_path)
    for command in (["slice", checkpoint, "--points", "3"], ["hessian", checkpoint, "--top-k", "1",
                                                             "--density-runs", "1", "--density-steps", "4"]):
        out = tmp_path / f"{command[0]}.h5"
        done = runner.invoke(app, [*command, "--data", data, "--device", "cpu", "--trust-checkpoint",
                                   "--no-plots", "-o", str(out), "--overwrite"])
        assert done.exit_code == 0, done.output
        with h5py.File(out) as file:
            assert file.attrs["output_key"] == "1", command[0]
    loaded = SliceResult.load(tmp_path / "slice.h5")
    assert loaded.provenance["output_key"] == "1"


@pytest.mark.parametrize("command", [
    ["train", "--arch", "test_output_key:make_dict", "--output-key", "scores", "--epochs", "1"],
    ["train", "--arch", "test_output_key:make_pair", "--output-key", "2", "--epochs", "1"],
    ["train", "--output-key", "logits", "--epochs", "1", "--depth", "2"],
])
def test_a_bad_output_key_is_one_sentence(tmp_path: Path, command: list[str]) -> None:
    data = _data_file(tmp_path) if "--arch" in command else "digits"
    result = CliRunner().invoke(app, [*command, "--data", data, "--device", "cpu", "--no-plots",
                                      "--output", str(tmp_path / "o")])
    text = one_sentence_exit_2(result)
    assert "output" in text
    assert not (tmp_path / "o").exists()
