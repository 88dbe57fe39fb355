"""Model sizes that cannot build a network get one sentence from build_model, and from `probe train` exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import build_model

runner = CliRunner()
FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "512", "--diagnostics-every", "0",
        "--device", "cpu", "--no-plots"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "width": 0}, "width to be a whole number of at least 1, not 0"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "width": 2.5}, "width to be a whole number of at least 1, not 2.5"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "width": -3}, "not -3"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "width": True}, "not True"),
        ({"name": "mlp", "in_features": 0, "num_outputs": 2}, "in_features to be a whole number of at least 1, not 0"),
        ({"name": "mlp", "in_features": 4, "num_outputs": 2, "depth": -1}, "depth to be a whole number of at least 0, not -1"),
        ({"name": "cnn", "input_shape": [1, 8, 8], "num_outputs": 2, "channels": [4, 0]}, "channels to be a whole number of at least 1, not [4, 0]"),
        ({"name": "transformer", "input_shape": [4, 1], "num_outputs": 2, "d_model": 0}, "d_model to be"),
        ({"name": "transformer", "input_shape": [4, 1], "num_outputs": 2, "ff_width": 1.5}, "ff_width to be"),
    ],
)
def test_build_model_refuses_sizes_that_are_not_whole_and_positive(args: dict, message: str) -> None:
    with pytest.raises(ProbeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_model(args)


def test_numpy_whole_numbers_are_sizes() -> None:
    model = build_model({"name": "mlp", "in_features": np.int64(4), "num_outputs": 2, "depth": 2, "width": np.int32(3)})
    assert [tuple(p.shape) for p in model.parameters()] == [(3, 4), (3,), (2, 3), (2,)]


@pytest.mark.parametrize(
    "options",
    [["--width", "0"], ["--width", "-3"], ["--width", "2.5"], ["--depth", "0"], ["--depth", "-2"],
     ["--model", "mlp:width=0"], ["--model", "mlp:width=2.5"], ["--model", "cnn", "--width", "0"],
     ["--model", "transformer", "--width", "0"]],
)
def test_train_with_an_impossible_size_exits_2_with_one_message(tmp_path: Path, options: list[str]) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", *options, *FAST, "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "Internal error" not in result.output and "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    assert ("Error:" in text and text.endswith(".")) or "Invalid value" in text, text
    assert not (out / "results.h5").exists()
    assert not out.exists() or list(out.iterdir()) == []
