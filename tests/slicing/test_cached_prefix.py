"""Per-layer sweeps from cached activations equal those of the whole model, and skip the layers before."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.models.cnn import CNN
from landscape_probe.models.zoo import MLP
from landscape_probe.slicing import cached_prefix
from landscape_probe.slicing.cached_prefix import cut_before
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.engine import run_slice

ARRAYS = ("loss", "relative_function_change", "relative_gradient_change", "kl_divergence", "accuracy")


def config(**changes) -> SliceConfig:
    settings = dict(scales=(0.003, 0.03, 0.3, 3.0), device="cpu", dtype="float64", per_layer=True,
                    power_iterations=60, power_tolerance=1e-10, chunk_size=7)
    settings.update(changes)
    return SliceConfig(**settings)


def data(n: int = 20, features: int = 6, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(n, features, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def without_cuts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: SliceConfig, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(cached_prefix, "cut_before", lambda *args, **kwargs: None)
        return run_slice(copy.deepcopy(model), x, y, "cross_entropy", settings)


@pytest.mark.parametrize("build", [
    lambda: MLP(6, 3, depth=4, width=8, norm="layer"),
    lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)),
    lambda: CNN((1, 6, 6), 3, depth=3, channels=4),
], ids=["mlp", "sequential", "cnn"])
def test_cut_sweeps_equal_whole_model_sweeps(build, monkeypatch):
    torch.manual_seed(0)  # built here, not at collection, so the weights do not depend on the tests collected before
    model = build()
    x, y = data()
    if isinstance(model, CNN):
        x = torch.randn(20, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    model = model.double().eval()
    last = list(dict(model.named_parameters()))[-2]
    assert cut_before(model, [last], x.double(), 7) is not None  # the cut path is the one compared
    cut = run_slice(copy.deepcopy(model), x, y, "cross_entropy", config())
    whole = without_cuts(model, x, y, config(), monkeypatch)
    assert list(cut.layers) == list(whole.layers) and len(cut.layers) >= 3
    for name in whole.layers:
        for array in ARRAYS:
            np.testing.assert_allclose(getattr(cut.layers[name], array), getattr(whole.layers[name], array),
                                       rtol=1e-10, atol=1e-13, err_msg=f"{name} {array}")
        assert cut.layers[name].lambda_max == pytest.approx(whole.layers[name].lambda_max, rel=1e-8)


def test_layers_before_the_cut_run_only_for_the_prefix(monkeypatch):
    model, (x, y) = MLP(6, 3, depth=4, width=8).double().eval(), data()
    calls = {"cut": 0, "whole": 0}
    key = ["cut"]
    model.hidden[0].register_forward_hook(lambda *args: calls.__setitem__(key[0], calls[key[0]] + 1))
    one_per_pass = config(select="output.weight", chunk_size=1024, points_per_pass=1)  # a forward call per point
    run_slice(model, x, y, "cross_entropy", one_per_pass)
    key[0] = "whole"
    without_cuts(model, x, y, one_per_pass, monkeypatch)
    # both: the whole sweep (W, λ_max's products do not run the forward again, 4 points); then the layer alone:
    # the cut runs the first layer once (the prefix), the whole model once more per evaluation
    assert calls["whole"] - calls["cut"] == 1 + 4 - 1


class TwoCrossing(nn.Module):
    """c = l3(tanh(l2(a))) + a with a = l1(x): two values (a, tanh(l2(a))) cross a cut before l3."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(6, 3), nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.l1(x)
        return self.l3(torch.tanh(self.l2(a))) + a


class Branching(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # data-dependent control flow: FX cannot trace it
        return x if x.sum() > 0 else -x


def test_no_cut_where_two_values_cross_or_tracing_fails():
    x = torch.randn(5, 6)
    assert cut_before(TwoCrossing(), ["l3.weight"], x, 1024) is None
    assert cut_before(TwoCrossing(), ["l2.weight"], x, 1024) is not None  # only a crosses before l2
    assert cut_before(nn.Sequential(nn.Linear(6, 3), Branching()), ["0.weight"], x, 1024) is None
    assert cut_before(nn.Sequential(nn.Linear(6, 3), nn.Linear(3, 2)), ["0.weight"], x, 1024) is None  # at the input


def test_boundary_batched_equals_the_prefix_run_whole():
    model, (x, _) = MLP(6, 3, depth=3, width=5).eval(), data()
    batched = cut_before(model, ["output.weight"], x, chunk_size=3)
    whole = cut_before(model, ["output.weight"], x, chunk_size=1024)
    expected = torch.relu(model.hidden[1](torch.relu(model.hidden[0](x))))
    torch.testing.assert_close(batched.inputs, expected)
    torch.testing.assert_close(whole.inputs, expected)
    torch.testing.assert_close(whole.suffix(whole.inputs), model(x))
