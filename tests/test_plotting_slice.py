"""Slice figures: drawn from the results file alone, with the file's numbers on them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.slicing import plots as slice_plots
from landscape_probe.hdf5 import provenance
from landscape_probe.slicing.store import read_slice, write_slice
from landscape_probe.slicing.engine import SliceConfig, run_slice


def write_results(path: Path, **changes) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 4, generator=generator), torch.randint(0, 3, (24,), generator=generator)
    settings = dict(scales=(0.01, 0.1, 1.0), device="cpu", power_iterations=3)
    settings.update(changes)
    result = run_slice(model, x, y, "cross_entropy", SliceConfig(**settings))
    write_slice(path, result, provenance(command_line="test", device="cpu", seed=0), overwrite=False)
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
    np.testing.assert_array_equal(measured.get_ydata(), data.whole["relative_gradient_change"][positive])
    drt = {line.get_label(): line for line in function_axes.get_lines()}["DRT"]
    np.testing.assert_array_equal(drt.get_ydata(), data.whole["drt_prediction"][positive])


def test_heatmap_holds_each_layers_gradient_change(layered):
    data = read_slice(layered)
    figure = slice_plots._layers_heatmap(data)
    shown = figure.axes[0].images[0].get_array()
    positive = data.scales > 0
    expected = np.log10([data.layers[name]["relative_gradient_change"][positive] for name in data.layers])
    np.testing.assert_allclose(np.ma.filled(shown, np.nan), expected)


def test_without_layers_only_two_figures_and_overflow_is_drawn(tmp_path):
    path = write_results(tmp_path / "plain.h5", scales=(0.1, 1e20, 1e36))
    assert read_slice(path).whole["nonfinite_points"] >= 1
    written = slice_plots.draw(path, tmp_path, ("pdf",))
    assert sorted(p.name for p in written) == ["plain_loss.pdf", "plain_relative_change.pdf"]
