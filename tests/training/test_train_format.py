"""The train results format: declared once, written and read back with its values, and files of 0.1.0 still open."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.layout import render_document
from landscape_probe.training.result import TrainResult
from landscape_probe.training.store import RunResult

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "fixtures" / "train_v0_1_0.h5"  # written by `probe train` of landscape_probe 0.1.0
LAYERS = ["hidden.0.weight", "output.weight"]
runner = CliRunner()


def _run(optimizer: str = "sgd", *, normalised: list[str] | None = None) -> RunResult:
    normalised = normalised or []
    records = {
        "loss": [2.5, 1.25, math.nan], "learning_rate": [0.1, 0.05, 0.025], "gradient_norm": [3.0, 2.0, 1.0],
        "weight_norm": [[1.0, 2.0], [1.5, 2.5], [2.0, 3.0]], "relative_update": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        "epoch_train_loss": [1.0], "epoch_train_accuracy": [0.75], "epoch_test_loss": [1.5],
        "epoch_test_accuracy": [0.5], "diagnostic_steps": [0, 2], "sharpness": [7.0, -1.0],
        "gradient_noise_scale": [12.0, 13.0], "spectral_shift": [[0.01, 0.02], [math.nan, math.nan]],
        "effective_learning_rate": [[0.1] * len(normalised), [0.2] * len(normalised)],
        "intrinsic_learning_rate": [0.001, 0.0005],
    }
    return RunResult(optimizer, 0.1, 2, 0, {"name": "mlp", "depth": 2}, LAYERS, normalised, records, steps=3,
                     diverged=True, best_of_grid=True)


def test_write_then_read_gives_back_every_value_with_its_units(tmp_path: Path) -> None:
    written = TrainResult([_run(), _run("adam", normalised=["hidden.0.weight"])], {"optimizers": ["sgd", "adam"]},
                          loss_units="squared target units", incomplete=True)
    path = written.save(tmp_path / "results.h5")
    read = TrainResult.load(path)
    assert read.config == {"optimizers": ["sgd", "adam"]} and read.incomplete and read.path == path
    assert read.loss_units == "squared target units"
    for before, after in zip(sorted(written.runs, key=lambda r: r.name), read.runs):
        assert (after.name, after.diverged, after.completed, after.steps) == (before.name, True, True, 3)
        assert after.layer_names == LAYERS and after.normalised_layer_names == before.normalised_layer_names
        for name, values in before.records.items():
            np.testing.assert_array_equal(after.records[name], values, err_msg=name)
    adam = read.run("adam_lr0.1_depth2_seed0")
    np.testing.assert_array_equal(adam.records["effective_learning_rate"], [[0.1], [0.2]])
    assert adam.records["diagnostic_steps"].dtype == np.int64
    with h5py.File(path, "r") as h5:
        group = h5["runs/sgd_lr0.1_depth2_seed0"]
        assert group["effective_learning_rate"].shape == (2, 0)
        assert group["step"][()].tolist() == [0, 1, 2] and group["epoch"][()].tolist() == [1]
        units = {name: group[name].attrs["units"] for name in group}
    assert {units[n] for n in ("loss", "gradient_norm", "sharpness", "epoch_train_loss")} == {"squared target units"}
    assert units["weight_norm"] == "1" and units["gradient_noise_scale"] == "examples" and units["step"] == ""


def test_a_file_written_by_version_0_1_0_still_loads_shows_and_plots(tmp_path: Path) -> None:
    result = TrainResult.load(LEGACY)
    assert [run.name for run in result.runs] == ["adam_lr0.001_depth2_seed0", "fromage_lr0.01_depth2_seed0"]
    fromage = result.run("fromage_lr0.01_depth2_seed0")
    assert fromage.records["loss"].shape == (23,) and fromage.records["weight_norm"].shape == (23, 2)
    assert fromage.records["diagnostic_steps"].tolist() == [0, 10, 20] and result.loss_units == "nats"
    assert result.attrs["tool_version"] == "0.1.0" and result.config["optimizers"] == ["fromage", "adam"]
    shown = runner.invoke(app, ["show", str(LEGACY)])
    assert shown.exit_code == 0, shown.output
    # the numbers 0.1.0 printed when it wrote the file
    assert "2.192" in shown.output and "2.011" in shown.output and "0.467" in shown.output
    plotted = runner.invoke(app, ["plot", str(LEGACY), "--output", str(tmp_path / "plots")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "plots" / "weight_norm_depth2.png").stat().st_size > 0


def test_summary_is_plain_text_with_the_loss_units() -> None:
    text = TrainResult.load(LEGACY).summary()
    assert "\x1b[" not in text and "final train loss (nats)" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert "2.011" in rows["fromage"] and "0.207" in rows["adam"]


def test_to_pandas_has_a_row_per_step_with_the_diagnostics_at_their_steps(tmp_path: Path) -> None:
    result = TrainResult([_run(), _run("adam")])
    steps = result.to_pandas()
    assert len(steps) == 6 and list(steps.columns[:6]) == ["run", "optimizer", "lr", "depth", "seed", "step"]
    sgd = steps[steps.optimizer == "sgd"]
    assert sgd["weight_norm[output.weight]"].tolist() == [2.0, 2.5, 3.0]
    assert sgd["sharpness"].tolist()[0] == 7.0 and math.isnan(sgd["sharpness"].tolist()[1])
    epochs = result.to_pandas("epochs")
    assert epochs["epoch"].tolist() == [1, 1] and epochs["epoch_train_accuracy"].tolist() == [0.75, 0.75]
    with pytest.raises(ProbeError, match="steps"):
        result.to_pandas("layers")


def test_plot_draws_from_a_results_file(tmp_path: Path) -> None:
    written = TrainResult([_run()]).plot(tmp_path / "plots", formats=("png",))
    assert {path.name for path in written} >= {"loss.png", "weight_norm_depth2.png", "diagnostics_depth2.png"}
    with pytest.raises(ProbeError, match="format"):
        TrainResult([_run()]).plot(tmp_path, formats=("gif",))


def test_the_document_table_is_the_declaration() -> None:
    doc = (ROOT / "docs" / "hdf5-format.md").read_text()
    assert "<!-- quantities: landscape_probe.training.records:RunRecords -->" in doc
    assert render_document(doc) == doc, "run: python -m landscape_probe.layout docs/hdf5-format.md"
