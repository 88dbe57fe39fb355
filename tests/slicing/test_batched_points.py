"""Several slice points per pass (vmap) against one point at a time, and how many points a pass takes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.params import unflatten
from landscape_probe.slicing import batched_points
from landscape_probe.slicing.batched_points import CAP, WEIGHT_COPIES, PointPasses, budgeted, chosen, parse_bytes
from landscape_probe.slicing.engine import run_slice
from landscape_probe.slicing.evaluator import ProbeEvaluator
from landscape_probe.slicing.result import SliceSweep
from tests.slicing.test_engine import class_data, f64_config, small_mlp

SCALES = tuple(float(t) for t in np.geomspace(1e-3, 2.0, 7))
COLUMNS = ("loss", "accuracy", "relative_function_change", "relative_gradient_change",
           "relative_gradient_change_per_layer", "kl_divergence", "drt_prediction", "euclidean_gradient_prediction",
           "taylor_loss_model", "quadratic_loss_model", "lambda_max", "curvature", "slope", "breakdown_scale")


def regression_data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.randn(n, 5, generator=generator, dtype=torch.float64), torch.randn(n, 3, generator=generator,
                                                                                  dtype=torch.float64)


def assert_same_sweep(batched: SliceSweep, one: SliceSweep, rtol: float = 1e-12) -> None:
    for name in COLUMNS:
        expected, actual = getattr(one, name), getattr(batched, name)
        if expected is None:
            assert actual is None, name
            continue
        # KL(p_0 || p_t) ~ t² is a difference of near-equal logs: at t = 1e-3 its rounding is 1e-18 absolute
        atol = 1e-16 if name == "kl_divergence" else 0.0
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_batched_points_give_the_one_at_a_time_numbers(loss, monkeypatch):
    """Whole and per layer (cut suffixes), two-sided, the 16 examples in chunks of 5 (3 × 5 + 1)."""
    x, y = class_data() if loss == "cross_entropy" else regression_data()
    passes, evaluate_points = [], batched_points.evaluate_points
    monkeypatch.setattr(batched_points, "evaluate_points",
                        lambda evaluator, points: passes.append(len(points)) or evaluate_points(evaluator, points))
    results = {per_pass: run_slice(small_mlp(), x, y, loss, f64_config(
        scales=SCALES, two_sided=True, per_layer=True, chunk_size=5, points_per_pass=per_pass, power_iterations=40))
        for per_pass in (1, 3, 2 * len(SCALES))}
    assert [results[k].config.points_per_pass for k in results] == [1, 3, 2 * len(SCALES)]
    assert passes == [3, 3, 3, 3, 2] * 4 + [14] * 4  # 14 points: the whole sweep's and each layer's
    for per_pass in (3, 2 * len(SCALES)):
        assert_same_sweep(results[per_pass].whole, results[1].whole)
        assert list(results[per_pass].layers) == ["0.weight", "2.weight", "4.weight"]
        for name, sweep in results[per_pass].layers.items():
            assert_same_sweep(sweep, results[1].layers[name])


def test_tied_weights_go_through_functional_call_batched_too():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    model[2].weight = model[0].weight  # one parameter used twice: the evaluator takes functional_call's path
    x, y = class_data()
    results = [run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(
        scales=SCALES, chunk_size=5, points_per_pass=per_pass, power_iterations=40)) for per_pass in (1, 4)]
    assert results[0].layer_names == ["0.weight", "4.weight"]
    assert_same_sweep(results[1].whole, results[0].whole)


def test_one_point_per_pass_is_the_evaluators_own_pass_bit_for_bit():
    model, (x, y) = small_mlp(), class_data()
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", ["0.weight", "4.weight"], batch_size=6)
    unit = torch.randn(evaluator.flat_base.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    passes = PointPasses(evaluator, unit, SCALES, per_pass=1)
    for t, at_t in zip(SCALES, passes, strict=True):
        point = torch.add(evaluator.flat_base, unit, alpha=t)  # as the sweep has always written W + t·u
        alone = evaluator.evaluate(unflatten(point, evaluator.base))
        alone_gradient = torch.cat([g.reshape(-1) for g in alone.gradient.values()])
        assert torch.equal(at_t.loss, alone.loss) and torch.equal(at_t.outputs, alone.outputs)
        assert torch.equal(torch.cat([g.reshape(-1) for g in at_t.gradient.values()]), alone_gradient)


def test_saved_bytes_are_the_activations_the_backward_pass_needs():
    """Linear, tanh, linear, MSE on a chunk of 4: tanh's output (also the second layer's input, saved once),
    the second weight and the outputs; not the probe inputs or targets."""
    model = nn.Sequential(nn.Linear(5, 7, bias=False), nn.Tanh(), nn.Linear(7, 3, bias=False)).double()
    x, y = regression_data(10)
    evaluator = ProbeEvaluator(model, x, y, "mse", ["0.weight", "2.weight"], batch_size=4)
    saved = (4 * 7 + 7 * 3 + 4 * 3) * 8
    assert batched_points._saved_bytes(evaluator) == saved
    per_point = saved + WEIGHT_COPIES * (5 * 7 + 7 * 3) * 8
    assert budgeted(evaluator, 3 * per_point + per_point - 1, points=21) == 3
    assert budgeted(evaluator, 3 * per_point, points=21) == 3


def test_auto_takes_one_point_under_a_tiny_budget_and_all_up_to_the_cap_under_a_large_one():
    model, (x, y) = small_mlp(), class_data()
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", ["0.weight", "2.weight"])
    assert chosen(evaluator, "auto", 2**40, points=21) == 1, "on a CPU, where batching measured no faster"
    assert budgeted(evaluator, 1000, points=21) == 1
    assert budgeted(evaluator, 2**40, points=21) == 21
    assert budgeted(evaluator, 2**40, points=50) == CAP
    assert chosen(evaluator, 8, 1, points=21) == 8 and chosen(evaluator, 40, 1, points=21) == 21


def test_a_torchscript_model_is_sliced_one_point_at_a_time():
    model, (x, y) = small_mlp(nn.ReLU), class_data()
    scripted = torch.jit.script(copy.deepcopy(model))
    evaluator = ProbeEvaluator(scripted, x, y, "cross_entropy", ["0.weight"])
    assert chosen(evaluator, "auto", 2**40, points=21) == 1 and chosen(evaluator, 8, 2**40, points=21) == 1
    config = f64_config(scales=SCALES, per_layer=True, power_iterations=40, points_per_pass=8)  # asked to batch
    result = run_slice(scripted, x, y, "cross_entropy", config)
    assert result.config.points_per_pass == 1
    assert_same_sweep(result.whole, run_slice(model, x, y, "cross_entropy", config).whole, rtol=1e-10)


class ValueBranch(nn.Module):
    """Python control flow on a value that depends on the weights: vmap cannot batch it."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.first(x)
        hidden = torch.tanh(hidden) if float(hidden.mean()) > 0 else torch.relu(hidden)
        return self.second(hidden)


def test_a_model_vmap_cannot_batch_falls_back_and_gives_the_same_numbers():
    torch.manual_seed(0)
    model, (x, y) = ValueBranch().double(), class_data()
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", ["first.weight", "second.weight"], batch_size=5)
    unit = torch.randn(evaluator.flat_base.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    passes = PointPasses(evaluator, unit, SCALES, per_pass=4)
    losses = [float(at_t.loss) for at_t in passes]
    assert passes.per_pass == 1  # the first batched pass raised
    one = [float(at_t.loss) for at_t in PointPasses(evaluator, unit, SCALES, per_pass=1)]
    assert losses == one
    again = PointPasses(evaluator, unit, SCALES, per_pass=4)  # asked again: one at a time, not tried again
    assert [float(at_t.loss) for at_t in again] == one and again.per_pass == 1
    config = f64_config(scales=SCALES, chunk_size=5, power_iterations=40, points_per_pass=4, per_layer=True)
    batched = run_slice(copy.deepcopy(model), x, y, "cross_entropy", config)  # asked to batch
    alone = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(
        scales=SCALES, chunk_size=5, power_iterations=40, points_per_pass=1, per_layer=True))
    assert batched.config.points_per_pass == 1  # the file records what was done, not what was asked
    for sweep, other in [(batched.whole, alone.whole), *zip(batched.layers.values(), alone.layers.values())]:
        assert_same_sweep(sweep, other, rtol=0)


def test_after_the_whole_model_refused_vmap_the_layers_are_not_tried_again(monkeypatch):
    torch.manual_seed(0)
    model, (x, y) = ValueBranch().double(), class_data()
    tried = []
    original = batched_points.evaluate_points

    def counted(evaluator, flat_points):
        tried.append(len(flat_points))
        return original(evaluator, flat_points)

    monkeypatch.setattr(batched_points, "evaluate_points", counted)
    run_slice(model, x, y, "cross_entropy", f64_config(scales=SCALES, points_per_pass=4, per_layer=True))
    assert tried == [4]  # the whole model's first pass only


@pytest.mark.parametrize("refusal", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 40000000000000 bytes."),  # what the CPU's allocator raises (not an OutOfMemoryError)
])
def test_running_out_of_memory_in_a_batched_pass_is_raised_not_taken_for_a_vmap_refusal(monkeypatch, refusal):
    """A device that ran out of memory is not a model vmap cannot batch: quietly going one point at a time would
    record a false reason (and, under --shard data, let one rank's passes differ from the others')."""
    model, (x, y) = small_mlp(), class_data()

    def out_of_memory(evaluator, flat_points):
        raise refusal

    monkeypatch.setattr(batched_points, "evaluate_points", out_of_memory)
    with pytest.raises(type(refusal), match="memory"):
        run_slice(model, x, y, "cross_entropy", f64_config(scales=SCALES, points_per_pass=4))


def test_memory_sizes_are_read_in_bytes_and_refused_in_one_sentence():
    assert parse_bytes("512MiB") == 512 * 2**20 and parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("1.5GB") == 1_500_000_000 and parse_bytes("4096") == 4096
    for text in ("lots", "-1GiB", "2XB", ""):
        with pytest.raises(ProbeError, match="Cannot read --memory-budget"):
            parse_bytes(text)
    with pytest.raises(ProbeError, match="--points-per-pass must be auto or a whole number"):
        f64_config(points_per_pass=0).check()
