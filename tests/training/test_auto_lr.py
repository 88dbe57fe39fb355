"""probe train --lr auto: each optimiser's rate is probe advise's for the weights its runs start from."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.data.datasets import load_dataset, probe_set
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import build_model

SETTINGS = {"width": 16, "epochs": 1, "diagnostics_every": 0, "device": "cpu", "batch_size": 256}


def advised(depth: int, seed: int = 0):
    """probe advise on the zoo MLP the runs of this depth start from, built here by hand."""
    dataset = load_dataset("digits")
    torch.manual_seed(seed)
    model = build_model({"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": depth, "width": 16,
                         "activation": "relu", "init": "lecun", "norm": "none"})
    x, y = probe_set(dataset, 512, seed=seed)
    return lp.advise(model, (x, y), device="cpu", probe_size=len(x))


def test_each_run_starts_at_the_advised_rate_of_its_depth_and_it_is_recorded() -> None:
    result = lp.train("mlp", "digits", optimizers=("adam", "fromage"), lr="auto", depths=(2, 3), **SETTINGS)
    recorded = result.config["auto_learning_rates"]
    for depth in (2, 3):
        advice = advised(depth)
        expected = {"adam": advice.adam_lr, "fromage": advice.fromage_lr}
        for name, rate in expected.items():
            assert recorded[name][str(depth)] == pytest.approx(rate, rel=5e-3)  # three significant figures
            (run,) = [r for r in result.runs if r.optimizer == name and r.depth == depth]
            assert run.lr == recorded[name][str(depth)]
    assert result.config["auto_lr_threshold"] == 0.5


def test_auto_for_one_optimizer_and_a_grid_centred_on_it(tmp_path) -> None:
    from landscape_probe.cli import app

    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", "--optimizer", "sgd", "--optimizer", "momentum", "--lr",
                                      "sgd=auto,momentum=0.05", "--lr-grid", "3", "--depth", "2", "--width", "16",
                                      "--epochs", "1", "--diagnostics-every", "0", "--batch-size", "256",
                                      "--device", "cpu", "-o", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    loaded = lp.load(out / "results.h5")
    rate = loaded.config["auto_learning_rates"]["sgd"]["2"]
    assert rate == pytest.approx(advised(2).sgd_lr, rel=5e-3)
    assert sorted(r.lr for r in loaded.runs if r.optimizer == "sgd") == pytest.approx([rate / 10, rate, rate * 10])
    assert sorted(r.lr for r in loaded.runs if r.optimizer == "momentum") == pytest.approx([0.005, 0.05, 0.5])
    assert "--lr auto" in result.output and f"sgd {rate:.3g} at depth 2" in result.output


def test_a_resumed_grid_reads_the_rates_back_instead_of_measuring_again(tmp_path, monkeypatch) -> None:
    first = lp.train("mlp", "digits", optimizers=("sgd",), lr="auto", depth=2, output=tmp_path, **SETTINGS)
    from landscape_probe.training import auto_lr

    monkeypatch.setattr(auto_lr, "auto_learning_rates", lambda *a, **k: pytest.fail("measured again"))
    again = lp.train(output=tmp_path, resume=True)
    assert again.config["auto_learning_rates"] == first.config["auto_learning_rates"]
    assert [r.lr for r in again.runs] == [r.lr for r in first.runs]


def test_optimizers_without_a_rule_are_refused_in_one_sentence() -> None:
    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2

    with pytest.raises(ProbeError, match="no rule for kfac"):
        lp.train("mlp", "digits", optimizers=("adam", "kfac"), lr="auto", depth=2, **SETTINGS)
    result = CliRunner().invoke(app, ["train", "--optimizer", "muon", "--lr", "auto", "--device", "cpu"])
    assert "no rule for muon" in one_sentence_exit_2(result)
    with pytest.raises(ProbeError, match="positive number or auto"):
        lp.train("mlp", "digits", optimizers=("adam",), lr={"adam": "fast"}, depth=2, **SETTINGS)
