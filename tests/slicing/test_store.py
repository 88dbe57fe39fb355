"""The slice results file: written and read from one declaration, compatible with files of version 0.1.0."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.layout import quantities, render_document
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.engine import run_slice
from landscape_probe.slicing.result import CALIBRATED, SliceResult, SliceSweep, group_attributes

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "slice_v0_1_0.h5"
"""Written by landscape_probe 0.1.0 (before the format was declared in slicing/result.py):
``probe slice sample_checkpoints/mlp2_digits.pt --points 5 --layers --no-plots``."""


def small_result(**changes) -> SliceResult:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 4, generator=generator), torch.randint(0, 3, (20,), generator=generator)
    settings = dict(scales=(0.01, 0.1, 1.0), device="cpu", power_iterations=4, per_layer=True)
    settings.update(changes)
    return run_slice(model, x, y, "cross_entropy", SliceConfig(**settings))


def assert_same_sweep(read: SliceSweep, written: SliceSweep) -> None:
    for f in fields(SliceSweep):
        expected, actual = getattr(written, f.name), getattr(read, f.name)
        if isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(actual, expected, err_msg=f.name)
        elif isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(actual), f.name
        elif isinstance(expected, dict):
            np.testing.assert_array_equal(list(actual.values()), list(expected.values()), err_msg=f.name)
        else:
            assert actual == expected, f.name


def test_write_then_read_gives_back_every_value(tmp_path):
    written = small_result(two_sided=True)
    written.provenance = {"command_line": "test", "checkpoint_sha256": "abc", "split": "train"}
    path = written.save(tmp_path / "s.h5")
    read = SliceResult.load(path)
    assert type(read) is SliceResult and read.path == path
    np.testing.assert_array_equal(read.scales, [-1.0, -0.1, -0.01, 0.01, 0.1, 1.0])
    assert read.layer_names == ["0.weight", "2.weight"] == written.layer_names
    np.testing.assert_array_equal(read.layer_sizes, written.layer_sizes)
    assert_same_sweep(read.whole, written.whole)
    assert list(read.layers) == ["0.weight", "2.weight"]
    for name in read.layers:
        assert_same_sweep(read.layers[name], written.layers[name])
    assert (read.loss_name, read.classification) == ("cross_entropy", True)
    assert read.config.scales == (0.01, 0.1, 1.0) and read.config.two_sided and read.config.per_layer
    assert read.config.resolved_scaling == "relative" and read.config.power_iterations == 4
    assert {k: read.provenance[k] for k in written.provenance} == written.provenance
    assert "kind" not in read.provenance and "verdict" not in read.provenance


def test_every_dataset_and_attribute_the_file_holds_is_declared(tmp_path):
    path = small_result().save(tmp_path / "s.h5")
    declared = {q.name for q in quantities(SliceSweep)}
    with h5py.File(path, "r") as h5:
        assert set(h5["layers/2.weight"]) == declared
        assert set(h5) == declared | {"scales", "layer_names", "layer_sizes", "layers"}
        assert set(group_attributes(SliceSweep)) <= set(h5.attrs)
        for name in CALIBRATED:
            assert set(h5[name].attrs) == {"description", "units", "calibration_constant", "first_divergence"}
        assert h5["loss"].attrs["units"] == "nats" and h5["lambda_max"].attrs["units"] == "nats"


def test_mse_losses_are_in_squared_target_units(tmp_path):
    model = nn.Linear(3, 2)
    x, y = torch.randn(10, 3), torch.randn(10, 2)
    result = run_slice(model, x, y, "mse", SliceConfig(scales=(0.1, 1.0), device="cpu", power_iterations=3))
    path = result.save(tmp_path / "mse.h5")
    with h5py.File(path, "r") as h5:
        assert h5["loss"].attrs["units"] == "squared target units"
        assert h5["taylor_loss_model"].attrs["units"] == "squared target units"
        assert "accuracy" not in h5 and "kl_divergence" not in h5
    read = SliceResult.load(path)
    assert read.accuracy is None and read.kl_divergence is None and not read.classification


def test_a_file_of_version_0_1_0_loads_with_the_values_it_holds():
    result = SliceResult.load(FIXTURE)
    with h5py.File(FIXTURE, "r") as h5:
        np.testing.assert_array_equal(result.scales, h5["scales"][()])
        np.testing.assert_array_equal(result.relative_gradient_change, h5["relative_gradient_change"][()])
        assert result.lambda_max == h5["lambda_max"][()]
        assert result.layers["output.weight"].breakdown_scale == h5["layers/output.weight/breakdown_scale"][()]
        assert result.verdict == h5.attrs["verdict"]
        constant = h5["calibrated_drt_prediction"].attrs["calibration_constant"]
        assert result.whole.calibration_constants["calibrated_drt_prediction"] == constant
        assert result.provenance["checkpoint_sha256"] == h5.attrs["checkpoint_sha256"]
    assert result.config.direction == "gradient" and result.config.probe_size == 512
    assert list(result.layers) == ["hidden.0.weight", "output.weight"]


def test_a_file_of_version_0_1_0_shows_and_plots(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(app, ["show", str(FIXTURE)])
    assert shown.exit_code == 0, shown.output
    assert "mlp2_digits.pt" in shown.output and "loss(0) = 0.1414" in shown.output and "λ_max = 3.34" in shown.output
    assert "Each layer perturbed alone" in shown.output
    drawn = runner.invoke(app, ["plot", str(FIXTURE), "--output", str(tmp_path)])
    assert drawn.exit_code == 0, drawn.output
    assert len(list(tmp_path.glob("slice_v0_1_0_*.png"))) == 4


def test_summary_is_the_text_probe_show_prints():
    shown = CliRunner().invoke(app, ["show", str(FIXTURE)], env={"COLUMNS": "100"})
    assert SliceResult.load(FIXTURE).summary(width=100) == shown.output


def test_a_two_sided_summary_shows_both_sides():
    text = small_result(per_layer=False, two_sided=True).summary(width=120)
    table = text[text.index("─") : text.index("Δf, Δg:")]
    shown = [float(line.split()[0]) for line in table.splitlines()[1:] if line.strip()]
    assert shown == [-1.0, -0.1, -0.01, 0.01, 0.1, 1.0], text  # the file's order: −t largest first, then t


def test_a_loss_only_summary_says_which_euclidean_trust_its_verdict_means():
    """Its verdict compares the function change with Euclidean trust, c·||ΔW|| calibrated (as the full slice's
    function verdict does); the summary must not say that nothing is said of Euclidean trust."""
    result = small_result(per_layer=False, measure="loss", direction="random")
    text = " ".join(result.summary(width=120).split())
    assert "Euclidean trust" in result.whole.function_verdict
    assert "the function change's Euclidean trust is linear in the step, c·||ΔW|| (linear~)" in text


def test_an_incomplete_or_foreign_file_is_refused(tmp_path):
    path = small_result(per_layer=False).save(tmp_path / "s.h5")
    with h5py.File(path, "a") as h5:
        del h5["kappa"]
    with pytest.raises(ProbeError, match="lacks kappa"):
        SliceResult.load(path)
    with h5py.File(tmp_path / "train.h5", "w") as h5:
        h5.attrs["kind"] = "train"
    with pytest.raises(ProbeError, match="not a slice"):
        SliceResult.load(tmp_path / "train.h5")


def test_to_pandas_has_one_row_per_scale():
    pandas = pytest.importorskip("pandas")
    result = small_result()
    frame = result.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and frame.index.name == "scale"
    assert frame.index.tolist() == [0.01, 0.1, 1.0]
    np.testing.assert_array_equal(frame["relative_gradient_change"], result.relative_gradient_change)
    np.testing.assert_array_equal(frame["kappa[2.weight]"], result.kappa[:, 1])
    assert frame.attrs["lambda_max"] == result.lambda_max
    alone = result.to_pandas("2.weight")
    np.testing.assert_array_equal(alone["loss"], result.layers["2.weight"].loss)
    with pytest.raises(ProbeError, match="0.weight, 2.weight"):
        result.to_pandas("nothing")


def test_plot_of_an_unsaved_result_draws_from_a_file(tmp_path):
    written = small_result().plot(tmp_path, formats=("svg",))
    assert sorted(p.name for p in written) == [
        "slice_layers_breakdown.svg", "slice_layers_heatmap.svg", "slice_loss.svg", "slice_relative_change.svg",
    ]


def test_the_document_table_is_the_declaration():
    document = (ROOT / "docs" / "hdf5-format.md").read_text()
    assert "<!-- quantities: landscape_probe.slicing.result:SliceSweep -->" in document
    assert render_document(document) == document
