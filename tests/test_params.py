"""params.py against plain loops over the tensors' entries."""

import math

import pytest
import torch
from torch import nn

from landscape_probe import params as P


@pytest.fixture
def pair():
    gen = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, 4, generator=gen, dtype=torch.float64), "b": torch.randn(4, generator=gen, dtype=torch.float64)}
    b = {"w": torch.randn(3, 4, generator=gen, dtype=torch.float64), "b": torch.randn(4, generator=gen, dtype=torch.float64)}
    return a, b


def _entries(a):
    return [float(x) for v in a.values() for x in v.reshape(-1)]


def test_dot_and_norm_match_a_plain_loop(pair):
    a, b = pair
    expected_dot = sum(x * y for x, y in zip(_entries(a), _entries(b)))
    assert float(P.dot(a, b)) == pytest.approx(expected_dot, rel=1e-12)
    assert float(P.norm(a)) == pytest.approx(math.sqrt(sum(x * x for x in _entries(a))), rel=1e-12)


def test_layer_norms_are_per_tensor(pair):
    a, _ = pair
    norms = P.layer_norms(a)
    for key, tensor in a.items():
        assert float(norms[key]) == pytest.approx(math.sqrt(sum(float(x) ** 2 for x in tensor.reshape(-1))))


def test_axpy_add_sub_scale(pair):
    a, b = pair
    out = P.axpy(2.5, a, b)
    for x, y, z in zip(_entries(a), _entries(b), _entries(out)):
        assert z == pytest.approx(2.5 * x + y)
    assert _entries(P.add(a, b)) == pytest.approx([x + y for x, y in zip(_entries(a), _entries(b))])
    assert _entries(P.sub(a, b)) == pytest.approx([x - y for x, y in zip(_entries(a), _entries(b))])
    assert _entries(P.scale(-3.0, a)) == pytest.approx([-3.0 * x for x in _entries(a)])
    factors = {"w": 2.0, "b": -1.0}
    scaled = P.scale_per_layer(factors, a)
    assert torch.equal(scaled["w"], 2.0 * a["w"]) and torch.equal(scaled["b"], -a["b"])


def test_flatten_round_trip(pair):
    a, _ = pair
    flat = P.flatten(a)
    assert flat.numel() == P.numel(a) == 16
    back = P.unflatten(flat, a)
    assert all(torch.equal(back[k], a[k]) for k in a)
    with pytest.raises(ValueError):
        P.unflatten(torch.zeros(15, dtype=torch.float64), a)


def test_select_layers_defaults_globs_and_1d():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    assert P.select_layers(model) == ["0.weight", "2.weight"]
    assert P.select_layers(model, include_1d=True) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert P.select_layers(model, pattern="2.*") == ["2.weight"]
    assert P.select_layers(model, pattern="0.*,2.weight", include_1d=True) == ["0.weight", "0.bias", "2.weight"]


def test_detached_params_share_storage_but_not_grad():
    model = nn.Linear(2, 2)
    got = P.detached_params(model, ["weight"])
    assert list(got) == ["weight"]
    assert got["weight"].data_ptr() == model.weight.data_ptr()
    assert not got["weight"].requires_grad
