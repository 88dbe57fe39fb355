"""The slice's fixed buffers: chunked probe sets, gradients accumulated in place, W held once, λ_max in two vectors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_probe import params as P
from landscape_probe.errors import ProbeError
from landscape_probe.slicing import engine
from landscape_probe.slicing.evaluator import ProbeEvaluator
from tests.slicing.test_engine import class_data, f64_config, small_mlp

NAMES = ["0.weight", "2.weight", "4.weight"]


def arrays(sweep) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(sweep).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("direction", ["gradient", "random"])
def test_chunked_probe_set_gives_the_unchunked_numbers(direction: str) -> None:
    """11 examples in chunks of 3 (3 + 3 + 3 + 2) against one pass over all 11, in float64."""
    model, (x, y) = small_mlp(nn.ReLU), class_data(n=11)
    whole = engine.run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(direction=direction))
    chunked = engine.run_slice(copy.deepcopy(model), x, y, "cross_entropy",
                               f64_config(direction=direction, chunk_size=3))
    for key, value in arrays(whole.whole).items():
        np.testing.assert_allclose(getattr(chunked.whole, key), value, rtol=1e-12, atol=1e-15, err_msg=key)
    for key in ("loss_at_zero", "gradient_norm", "slope", "curvature"):
        assert getattr(chunked.whole, key) == pytest.approx(getattr(whole.whole, key), rel=1e-12)
    assert chunked.whole.lambda_max == pytest.approx(whole.whole.lambda_max, rel=1e-10)
    with torch.no_grad():  # and the mean over all examples, a plain loop one example at a time
        per_example = [float(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])) for i in range(len(x))]
    assert chunked.whole.loss_at_zero == pytest.approx(sum(per_example) / len(x), rel=1e-12)


def test_chunk_size_below_one_is_refused() -> None:
    model, (x, y) = small_mlp(), class_data()
    with pytest.raises(ProbeError, match="--chunk-size must be at least 1"):
        engine.run_slice(model, x, y, "cross_entropy", f64_config(chunk_size=0))


def test_gradient_accumulated_into_a_buffer_equals_a_fresh_one() -> None:
    model, (x, y) = small_mlp(nn.ReLU), class_data(n=11)
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", NAMES, batch_size=4)
    weights = {k: v + 0.1 * torch.randn_like(v) for k, v in evaluator.base.items()}
    fresh = evaluator.evaluate(weights)
    buffer = torch.full_like(evaluator.flat_base, 7.0)  # stale contents must not leak in
    into = evaluator.evaluate(weights, gradient_into=buffer)
    assert all(part.data_ptr() == piece.data_ptr() for part, piece in zip(into.gradient.values(),
                                                                           P.unflatten(buffer, weights).values()))
    assert torch.equal(P.flatten(into.gradient), P.flatten(fresh.gradient))  # the same sums in the same order
    assert torch.equal(into.loss, fresh.loss) and torch.equal(into.outputs, fresh.outputs)
    # and against autograd on the whole probe set at once
    leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
    expected = torch.autograd.grad(evaluator.loss_fn(leaves), list(leaves.values()))
    torch.testing.assert_close(buffer, torch.cat([g.reshape(-1) for g in expected]), rtol=1e-12, atol=1e-14)
    assert all(leaf.grad is None for leaf in leaves.values())


def test_weights_held_once_are_the_models_own_and_unchanged() -> None:
    model = small_mlp()
    x, y = class_data()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", NAMES, hold_weights_once=True)
    named = dict(model.named_parameters())
    start = evaluator.flat_base.data_ptr()
    end = start + evaluator.flat_base.numel() * evaluator.flat_base.element_size()
    assert all(start <= named[n].data_ptr() < end for n in NAMES)  # W lives once, in flat_base
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    twin = ProbeEvaluator(copy.deepcopy(model), x, y, "cross_entropy", NAMES)
    torch.testing.assert_close(evaluator.evaluate(evaluator.base).outputs, twin.evaluate(twin.base).outputs,
                               rtol=0, atol=0)


@pytest.mark.parametrize("direction", ["gradient", "random"])
def test_three_term_lanczos_gives_the_full_basis_numbers(monkeypatch, direction: str) -> None:
    """The recurrence used for models whose Lanczos basis does not fit: λ_max to its tolerance, the rest equal.

    Along the gradient the recurrence runs in u's own buffer and u is rebuilt from g(0) afterwards: the points
    step along the same u, bit for bit.
    """
    model, (x, y) = small_mlp(), class_data()
    config = f64_config(power_tolerance=1e-12, direction=direction)
    full = engine.run_slice(copy.deepcopy(model), x, y, "cross_entropy", config)
    monkeypatch.setattr(engine, "basis_fits", lambda *args: False)
    short = engine.run_slice(copy.deepcopy(model), x, y, "cross_entropy", config)
    assert short.whole.lambda_max == pytest.approx(full.whole.lambda_max, rel=1e-10)
    assert short.whole.curvature == full.whole.curvature  # α₁ ||u||², the same first product
    for key in ("loss", "relative_gradient_change", "relative_function_change", "kappa"):
        np.testing.assert_array_equal(getattr(short.whole, key), getattr(full.whole, key))


def test_run_slice_gives_the_model_its_own_storage_back() -> None:
    """The weights held once during the sweep; afterwards no parameter is a view into a buffer of all of them."""
    model, (x, y) = small_mlp(), class_data()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    engine.run_slice(model, x, y, "cross_entropy", f64_config(power_iterations=3))
    for name, parameter in model.named_parameters():
        assert parameter.untyped_storage().nbytes() == parameter.numel() * parameter.element_size(), name
        assert torch.equal(parameter.detach(), before[name]), name


@pytest.mark.parametrize(("scaling", "norm"), [("relative", "frobenius"), ("relative", "spectral"),
                                               ("relative", "neuron"), ("global", "frobenius"),
                                               ("filter", "frobenius"), ("none", "frobenius")])
def test_the_step_of_minus_d_from_d_with_the_sign_in_the_factors_is_the_same_bits(scaling: str, norm: str) -> None:
    from landscape_probe.slicing import directions

    torch.manual_seed(0)
    params = {"a": torch.randn(6, 5), "b": torch.randn(3, 6), "zero": torch.randn(2, 3)}
    d = {"a": torch.randn(6, 5), "b": torch.randn(3, 6), "zero": torch.zeros(2, 3)}
    minus = {k: -v for k, v in d.items()}
    expected = minus if scaling == "none" else directions.unit_step(minus, params, scaling, norm)
    folded = directions.flat_unit_step(d, params, scaling, norm, sign=-1.0)
    flat = P.flatten(expected)
    assert torch.equal(folded, flat)  # equal values, and the same bits except maybe a zero's sign:
    assert torch.equal(folded[flat != 0].view(torch.int32), flat[flat != 0].view(torch.int32))
    assert torch.equal(directions.flat_unit_step(minus, params, scaling, norm), P.flatten(expected))
