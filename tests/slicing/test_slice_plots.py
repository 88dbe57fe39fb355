"""Slice figures: drawn from the results file alone, with the file's numbers on them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.slicing import plots as slice_plots
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.engine import run_slice
from landscape_probe.slicing.store import read_slice, write_slice


def write_results(path: Path, **changes) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 4, generator=generator), torch.randint(0, 3, (24,), generator=generator)
    settings = dict(scales=(0.01, 0.1, 1.0), device="cpu", power_iterations=3)
    settings.update(changes)
    result = run_slice(model, x, y, "cross_entropy", SliceConfig(**settings))
    write_slice(path, result, overwrite=False)
    return path


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("plots") / "layered.h5", per_layer=True, two_sided=True)


def test_draw_writes_every_figure_in_every_format(layered, tmp_path):
    written = slice_plots.draw(layered, tmp_path / "figs", ("png", "svg"))
    names = {"relative_change", "loss", "layers_heatmap", "layers_breakdown"}
    assert {p.name for p in written} == {f"layered_{n}.{f}" for n in names for f in ("png", "svg")}
    assert all(p.stat().st_size > 1000 for p in written)


def test_relative_change_figure_shows_the_files_numbers(layered):
    data = read_slice(layered)
    figure = slice_plots._relative_change(data)
    function_axes, gradient_axes = figure.axes
    positive = data.scales > 0
    measured = {line.get_label(): line for line in gradient_axes.get_lines()}["measured"]
    np.testing.assert_array_equal(measured.get_xdata(), data.scales[positive])
    np.testing.assert_array_equal(measured.get_ydata(), data.relative_gradient_change[positive])
    drt = {line.get_label(): line for line in function_axes.get_lines()}["DRT"]
    np.testing.assert_array_equal(drt.get_ydata(), data.drt_prediction[positive])


def test_a_calibrated_line_on_its_raw_line_is_drawn_once_and_the_legend_says_so():
    sweep = SimpleNamespace(calibration_constants={
        "calibrated_drt_prediction": 3.0, "calibrated_euclidean_gradient_prediction": 1.04,
    })
    panel = slice_plots.RELATIVE_CHANGE_PANELS["relative_gradient_change"][1]
    labels = {name: label for name, label, *_ in slice_plots._lines(sweep, panel)}
    assert labels == {
        "drt_prediction": "DRT",
        "calibrated_drt_prediction": "DRT, calibrated (c = 3)",
        "euclidean_gradient_prediction": "Euclidean |λ|·||ΔW||/||g|| (= calibrated, c = 1)",
    }


def test_heatmap_holds_each_layers_gradient_change_on_a_log_axis(layered):
    data = read_slice(layered)
    figure = slice_plots._layers_heatmap(data)
    axes = figure.axes[0]
    positive = data.scales > 0
    expected = np.log10([data.layers[name].relative_gradient_change[positive] for name in data.layers])
    np.testing.assert_allclose(np.ma.filled(axes.collections[0].get_array(), np.nan).reshape(expected.shape), expected)
    assert axes.get_xscale() == "log"
    left, right = axes.get_xlim()
    # cells are centred on the scales: 0.01, 0.1, 1 span 10^-2.5 … 10^0.5
    assert (left, right) == pytest.approx((10**-2.5, 10**0.5))


def test_breakdown_figure_shows_the_measured_and_both_predicted_scales(layered):
    data = read_slice(layered)
    figure = slice_plots._layers_breakdown(data)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    # one layer alone, relative scaling: κ_l(t) = |t|, so DRT reaches 1 at t = 1 for every layer
    np.testing.assert_allclose(lines["DRT predicts (κ_l = 1)"].get_xdata(), np.ones(len(data.layers)), rtol=1e-6)
    # Euclidean trust reaches 1 where |λ_l|·|t|·||u_l|| = ||g_l||
    expected = [sweep.gradient_norm / (abs(sweep.lambda_max) * sweep.unit_step_norm) for sweep in data.layers.values()]
    np.testing.assert_allclose(lines["Euclidean predicts (|λ_l|·||ΔW_l|| = ||g_l||)"].get_xdata(), expected, rtol=1e-6)


def test_predicted_breakdown_of_a_linear_prediction():
    scales = np.array([-1.0, 0.1, 1.0, 10.0])
    assert slice_plots.predicted_breakdown(scales, 0.25 * np.abs(scales)) == pytest.approx(4.0)
    assert np.isnan(slice_plots.predicted_breakdown(scales, np.zeros(4)))


def test_without_layers_only_two_figures_and_overflow_is_drawn(tmp_path):
    path = write_results(tmp_path / "plain.h5", scales=(0.1, 1e20, 1e36))
    assert read_slice(path).whole.nonfinite_points >= 1
    written = slice_plots.draw(path, tmp_path, ("pdf",))
    assert sorted(p.name for p in written) == ["plain_loss.pdf", "plain_relative_change.pdf"]
