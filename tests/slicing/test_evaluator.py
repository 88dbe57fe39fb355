"""ProbeEvaluator: the model at W + ΔW equals a copy of the model with its weights set to W + ΔW."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from landscape_probe.slicing.evaluator import ProbeEvaluator


def reference(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """Outputs and gradient of a deep copy whose parameters are overwritten in place (ties follow)."""
    twin = copy.deepcopy(model)
    named = dict(twin.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            named[name].copy_(value)
    out = twin(x)
    loss = nn.functional.cross_entropy(out, y)
    return out.detach(), float(loss), torch.autograd.grad(loss, [named[n] for n in weights])


class Tied(nn.Module):
    """Two linear maps sharing one weight matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x)))


@pytest.mark.parametrize("build, swapped_in_place", [
    (lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 4)), True),
    (Tied, False),
    (lambda: nn.utils.parametrizations.weight_norm(nn.Linear(4, 4)), False),
], ids=["plain", "tied", "parametrized"])
def test_evaluate_matches_a_copy_with_the_weights_written_in(build, swapped_in_place: bool) -> None:
    torch.manual_seed(0)
    model = build().double().eval()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 4, (10,))
    names = [name for name, p in model.named_parameters() if p.ndim >= 2]
    evaluator = ProbeEvaluator(model, x, y, "cross_entropy", names)
    assert (evaluator._slots is not None) == swapped_in_place  # else functional_call, which handles ties
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = {k: v + 0.3 * torch.randn_like(v) for k, v in evaluator.base.items()}
    at = evaluator.evaluate(weights)
    outputs, loss, gradient = reference(model, weights, x, y)
    torch.testing.assert_close(at.outputs, outputs, rtol=1e-12, atol=1e-12)
    assert float(at.loss) == pytest.approx(loss, rel=1e-12)
    for name, part in zip(weights, gradient):
        torch.testing.assert_close(at.gradient[name], part, rtol=1e-10, atol=1e-12)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was left changed"


def test_parameters_are_put_back_when_the_forward_pass_fails() -> None:
    model = nn.Sequential(nn.Linear(4, 3))
    original = model[0].weight
    evaluator = ProbeEvaluator(model, torch.randn(5, 4), torch.randint(0, 3, (5,)), "cross_entropy", ["0.weight"])
    with pytest.raises(RuntimeError):
        evaluator.evaluate({"0.weight": torch.zeros(3, 5)})  # wrong shape: the matmul fails
    assert model[0].weight is original
