"""`probe info`: table and JSON output, checked against torch; errors exit 2 without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from landscape_probe.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["info", *args])


def test_help_lists_commands_and_info_has_examples():
    assert runner.invoke(app, ["--help"]).exit_code == 0
    assert "info" in runner.invoke(app, ["--help"]).output
    result = invoke("--help")
    assert result.exit_code == 0 and "--arch" in result.output and "probe info" in result.output


def test_table_shows_format_architecture_and_every_parameter(tiny_checkpoint: Path, tiny_model: nn.Module):
    result = invoke(str(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    assert "landscape_probe" in result.output and "depth=3" in result.output
    for name, param in tiny_model.named_parameters():
        assert name in result.output
        assert "×".join(map(str, param.shape)) in result.output
    assert "122 parameters in 6 tensors; 105 in 3 layers" in result.output


def test_json_values_match_torch(tiny_checkpoint: Path, tiny_model: nn.Module):
    result = invoke(str(tiny_checkpoint), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "landscape_probe" and summary["step"] == 12
    rows = {row["name"]: row for row in summary["parameters"]}
    assert list(rows) == [name for name, _ in tiny_model.named_parameters()]
    for name, param in tiny_model.named_parameters():
        weight = param.detach().double()
        assert rows[name]["numel"] == weight.numel()
        assert rows[name]["frobenius_norm"] == pytest.approx(weight.pow(2).sum().sqrt().item(), rel=1e-9)
        if weight.ndim == 2:
            assert rows[name]["spectral_norm"] == pytest.approx(torch.linalg.svdvals(weight)[0].item(), rel=1e-9)
            assert rows[name]["is_layer"]
        else:
            assert rows[name]["spectral_norm"] is None and not rows[name]["is_layer"]
    assert summary["totals"]["numel"] == sum(p.numel() for p in tiny_model.parameters())


def test_bare_state_dict_with_arch_and_arch_kwargs(tmp_path: Path, tiny_model: nn.Module):
    torch.save({"module." + k: v for k, v in tiny_model.state_dict().items()}, tmp_path / "w.pt")
    result = invoke(str(tmp_path / "w.pt"), "--arch", "mlp", "--arch-kwargs", '{"width": 7}', "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "state_dict" and summary["model_args"]["depth"] == 3


def test_pickled_module_needs_trust_flag(tmp_path: Path, tiny_model: nn.Module):
    torch.save(tiny_model, tmp_path / "whole.pt")
    refused = invoke(str(tmp_path / "whole.pt"))
    assert refused.exit_code == 2 and "--trust-checkpoint" in refused.output
    trusted = invoke(str(tmp_path / "whole.pt"), "--trust-checkpoint", "--json")
    assert trusted.exit_code == 0 and json.loads(trusted.output)["format"] == "pickled_module"


def _garbage(folder: Path) -> Path:
    (folder / "junk.pt").write_bytes(b"\x00garbage" * 50)
    return folder / "junk.pt"


def _bare_weights(folder: Path) -> Path:
    torch.save({"w": torch.ones(2, 2)}, folder / "w.pt")
    return folder / "w.pt"


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        (lambda folder: folder / "missing.pt", [], "does not exist"),
        (lambda folder: folder, [], "is not a file"),
        (_garbage, [], "is not a PyTorch checkpoint"),
        (_bare_weights, ["--arch", "mlp:in_features=2,num_outputs=2,depth=abc"], "gives depth='abc'; it must be a whole number"),
        (_bare_weights, ["--arch", "mlp", "--arch-kwargs", "{bad"], "--arch-kwargs is not valid JSON"),
        (_bare_weights, ["--arch", "mlp:in_features=2,num_outputs=2", "--arch-kwargs", "[1]"], "must be a JSON object"),
    ],
    ids=["missing", "directory", "garbage", "arch not a number", "bad json", "json not object"],
)
def test_errors_exit_2_without_traceback(tmp_path: Path, setup, extra: list[str], message: str):
    result = invoke(str(setup(tmp_path)), *extra)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_debug_shows_traceback(tmp_path: Path):
    result = invoke(str(tmp_path / "missing.pt"), "--debug")
    assert result.exit_code == 2 and "Traceback" in result.output


def test_bare_weights_are_listed_without_arch(tmp_path: Path):
    torch.save({"w": torch.ones(2, 3), "scale": torch.tensor([float("nan")])}, tmp_path / "w.pt")
    result = invoke(str(tmp_path / "w.pt"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["architecture"].startswith("unknown: --arch is needed only to run the model")
    assert [(row["name"], row["finite"]) for row in summary["parameters"]] == [("w", True), ("scale", False)]
    assert summary["parameters"][0]["frobenius_norm"] == pytest.approx(6**0.5)
    assert summary["parameters"][0]["spectral_norm"] == pytest.approx(6**0.5)
