"""The Python examples in docs/hdf5-format.md run on real results files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.cli import app
from landscape_probe.models.zoo import build_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "hdf5-format.md"
ARGS = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}


@pytest.fixture(scope="module")
def results_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pt"
    save_checkpoint(checkpoint, build_model(ARGS), ARGS, data={"name": "digits", "seed": 0})
    runner = CliRunner()
    sliced = runner.invoke(app, ["slice", str(checkpoint), "--probe-size", "32", "--scales", "0.01,0.1,1",
                                 "--layers", "--power-iterations", "5", "--no-plots",
                                 "--output", str(folder / "slice.h5")])
    assert sliced.exit_code == 0, sliced.output
    trained = runner.invoke(app, ["train", "--optimizer", "sgd", "--depth", "2", "--width", "8", "--epochs", "1",
                                  "--diagnostics-every", "0", "--no-plots", "--output", str(folder / "run")])
    assert trained.exit_code == 0, trained.output
    return {"mlp16_digits_slice.h5": folder / "slice.h5", "runs/train/results.h5": folder / "run" / "results.h5"}


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_doc_has_examples() -> None:
    assert len(_examples()) >= 4


@pytest.mark.parametrize("index", range(len(_examples())))
def test_example_runs(index: int, results_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = _examples()[index]
    for name, path in results_files.items():
        code = code.replace(f'"{name}"', repr(str(path)))
    exec(compile(code, f"hdf5-format.md example {index}", "exec"), {})
    assert capsys.readouterr().out.strip()
