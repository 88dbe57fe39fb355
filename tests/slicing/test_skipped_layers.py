"""--layers on a model with a layer the loss does not use: that layer is recorded as skipped, the others swept."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from landscape_probe.slicing.advice import advice_from_slice
from landscape_probe.slicing.directions import VANISHED
from landscape_probe.slicing.engine import run_slice
from landscape_probe.slicing.store import read_slice
from landscape_probe.slicing.summary import summary_text
from tests.slicing.test_engine import class_data, f64_config

SWEPT = ("loss", "relative_function_change", "relative_gradient_change", "kl_divergence")


class _WithUnused(nn.Module):
    def __init__(self, used: nn.Sequential) -> None:
        super().__init__()
        self.used, self.unused = used, nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def _used() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def test_a_layer_with_zero_gradient_is_skipped_and_the_others_equal_the_model_without_it(tmp_path):
    x, y = class_data()
    settings = f64_config(per_layer=True, select="*weight")
    with_unused = run_slice(_WithUnused(_used()).double(), x, y, "cross_entropy", settings)
    alone = run_slice(_used(), x, y, "cross_entropy", settings)
    assert with_unused.skipped_layers == {"unused.weight": VANISHED}
    assert list(with_unused.layers) == ["used.0.weight", "used.2.weight"]
    for name, sweep in alone.layers.items():
        for field in SWEPT:
            np.testing.assert_allclose(getattr(with_unused.layers[f"used.{name}"], field), getattr(sweep, field),
                                       rtol=1e-12, err_msg=f"{name} {field}")
        assert with_unused.layers[f"used.{name}"].lambda_max == sweep.lambda_max
    back = read_slice(with_unused.save(tmp_path / "slice.h5"))
    assert back.skipped_layers == with_unused.skipped_layers and list(back.layers) == list(with_unused.layers)
    text = summary_text(back, width=200)
    assert "unused.weight: no sweep of its own" in text
    assert "Advice (relative gradient change" in text and "Advice (relative gradient change" in summary_text(alone)
    assert advice_from_slice(back, 0.5).layer_names == ["used.0.weight", "used.2.weight"]


def test_dead_relu_layer_is_skipped_not_an_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every hidden unit dead: only the output bias gets a gradient
    x, y = class_data()
    result = run_slice(model, x, y, "cross_entropy", f64_config(per_layer=True, include_1d=True))
    assert list(result.skipped_layers) == ["0.weight", "0.bias", "2.weight"] and list(result.layers) == ["2.bias"]


def test_advice_on_sweeps_of_groups_of_layers_is_one_sentence():
    import dataclasses

    import pytest

    from landscape_probe.errors import ProbeError

    x, y = class_data()
    result = run_slice(_used(), x, y, "cross_entropy", f64_config(per_layer=True, select="*weight"))
    grouped = dataclasses.replace(result, layers={"block 0": result.layers["0.weight"]})
    with pytest.raises(ProbeError, match="groups of layers"):
        advice_from_slice(grouped, 0.5)
