"""Directions, step scalings and κ, checked against plain loops, SVDs and finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from landscape_probe import params as P
from landscape_probe.curvature.hessian import GradientGraph
from landscape_probe.slicing.directions import (
    checkpoint_direction,
    eigenvector_direction,
    filter_normalize,
    gradient_direction,
    kappa,
    layer_norm,
    random_direction,
    unit_step,
)
from landscape_probe.errors import ProbeError


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(5, 3, generator=g, dtype=torch.float64),
        "fc.bias": torch.randn(5, generator=g, dtype=torch.float64),
        "conv.weight": torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64),
    }


def rows(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Output rows, each flattened; a 1-D tensor is one row."""
    return [tensor] if tensor.ndim < 2 else [row.flatten() for row in tensor]


def loop_row_norms(tensor: torch.Tensor) -> list[float]:
    return [math.sqrt(sum(float(x) ** 2 for x in row)) for row in rows(tensor)]


def independent_norm(tensor: torch.Tensor, norm: str) -> float:
    if norm == "frobenius" or tensor.ndim < 2 and norm == "spectral":
        return math.sqrt(sum(float(x) ** 2 for x in tensor.flatten()))
    if norm == "spectral":
        return float(torch.linalg.svdvals(tensor.reshape(tensor.shape[0], -1))[0])
    raise AssertionError(norm)


@pytest.mark.parametrize("norm", ["frobenius", "spectral"])
@pytest.mark.parametrize("t", [1e-3, 0.5, 3.0])
def test_relative_scaling_gives_kappa_t_in_every_layer(norm: str, t: float) -> None:
    w, d = weights(0), random_direction(weights(0), seed=1)
    step = P.scale(t, unit_step(d, w, "relative", norm))
    for k in w:
        assert independent_norm(step[k], norm) / independent_norm(w[k], norm) == pytest.approx(t, rel=1e-9)
    assert all(v == pytest.approx(t, rel=1e-9) for v in kappa(step, w, norm).values())


@pytest.mark.parametrize("scaling", ["relative", "filter"])
def test_neuron_relative_and_filter_steps_match_row_norms_of_w(scaling: str) -> None:
    w, d = weights(2), random_direction(weights(2), seed=3)
    step = unit_step(d, w, scaling, "neuron")
    for k in w:
        assert loop_row_norms(step[k]) == pytest.approx(loop_row_norms(w[k]), rel=1e-12)
        for row_d, row_s in zip(rows(d[k]), rows(step[k])):
            cosine = float(row_d @ row_s) / (float(row_d.norm()) * float(row_s.norm()))
            assert cosine == pytest.approx(1.0, rel=1e-12)
    half = P.scale(0.5, step)
    assert all(v == pytest.approx(0.5, rel=1e-12) for v in kappa(half, w, "neuron").values())


def test_neuron_kappa_is_the_largest_row_ratio() -> None:
    w = {"w": torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)}
    step = {"w": torch.tensor([[0.1, 0.0], [0.0, 1.0]], dtype=torch.float64)}
    assert kappa(step, w, "neuron")["w"] == pytest.approx(0.5)
    assert kappa(step, w, "frobenius")["w"] == pytest.approx(math.sqrt(1.01) / math.sqrt(5.0))


def test_global_step_has_euclidean_norm_t() -> None:
    w, d = weights(4), random_direction(weights(4), seed=5)
    step = P.scale(0.25, unit_step(d, w, "global", "spectral"))
    total = math.sqrt(sum(float(x) ** 2 for v in step.values() for x in v.flatten()))
    assert total == pytest.approx(0.25, rel=1e-12)


def test_zero_layers_get_zero_steps_and_zero_direction_is_an_error() -> None:
    w = {"a": torch.ones(2, 2, dtype=torch.float64), "b": torch.zeros(2, 2, dtype=torch.float64)}
    d = {"a": torch.zeros(2, 2, dtype=torch.float64), "b": torch.ones(2, 2, dtype=torch.float64)}
    for scaling, norm in [("relative", "frobenius"), ("relative", "spectral"), ("filter", "frobenius")]:
        step = unit_step(d, w, scaling, norm)
        assert torch.count_nonzero(step["a"]) == 0 and torch.count_nonzero(step["b"]) == 0
    assert kappa(d, w)["b"] == math.inf and kappa(d, w)["a"] == 0.0
    with pytest.raises(ProbeError, match="zero"):
        unit_step(P.zeros_like(w), w, "global")
    with pytest.raises(ProbeError, match="scaling"):
        unit_step(d, w, "sideways")
    with pytest.raises(ProbeError, match="norm"):
        layer_norm(w["a"], "nuclear")


def test_gradient_direction_matches_finite_differences() -> None:
    w = weights(6)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss_fn(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.sum(torch.tanh(x @ p["fc.weight"].T + p["fc.bias"]) ** 2) + torch.sum(p["conv.weight"] ** 3)

    d = gradient_direction(loss_fn, w)
    h = 1e-6
    for k in w:
        for index in [(0,) * w[k].ndim, tuple(s - 1 for s in w[k].shape)]:
            plus, minus = P.clone(w), P.clone(w)
            plus[k][index] += h
            minus[k][index] -= h
            difference = (float(loss_fn(plus)) - float(loss_fn(minus))) / (2 * h)
            assert -float(d[k][index]) == pytest.approx(difference, rel=1e-6, abs=1e-8)


def test_random_direction_reproducible_and_seed_dependent() -> None:
    w = weights(0)
    first, again, other = random_direction(w, 11), random_direction(w, 11), random_direction(w, 12)
    assert all(torch.equal(first[k], again[k]) for k in w)
    assert not torch.equal(first["fc.weight"], other["fc.weight"])
    assert all(first[k].shape == w[k].shape and first[k].dtype == w[k].dtype for k in w)


def test_checkpoint_direction_and_its_errors() -> None:
    w, other = weights(0), weights(1)
    d = checkpoint_direction(w, other)
    for k in w:
        torch.testing.assert_close(w[k] + d[k], other[k], rtol=0, atol=1e-15)
    with pytest.raises(ProbeError, match="'fc.bias'"):
        checkpoint_direction(w, {k: v for k, v in other.items() if k != "fc.bias"})
    with pytest.raises(ProbeError, match=r"'fc.weight'.*\(5, 4\).*\(5, 3\)"):
        checkpoint_direction(w, {**other, "fc.weight": torch.zeros(5, 4)})
    with pytest.raises(ProbeError, match="identical weights"):
        checkpoint_direction(w, {k: v.clone() for k, v in w.items()})


def test_eigenvector_direction_is_the_top_eigenvector() -> None:
    a = torch.diag(torch.tensor([1.0, 4.0, -2.0], dtype=torch.float64))
    w = {"w": torch.zeros(3, dtype=torch.float64)}
    graph = GradientGraph.at(lambda p: 0.5 * p["w"] @ a @ p["w"], w)
    v = eigenvector_direction(graph, seed=0, iterations=300)
    assert abs(float(v["w"][1])) == pytest.approx(1.0, rel=1e-8)


def test_filter_normalize_rescales_bias_as_a_whole() -> None:
    w = {"b": torch.tensor([3.0, 4.0], dtype=torch.float64)}
    d = {"b": torch.tensor([1.0, 0.0], dtype=torch.float64)}
    assert filter_normalize(d, w)["b"].tolist() == [5.0, 0.0]
