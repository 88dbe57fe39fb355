"""K-FAC: factors against plain loops, and the step against (Ā ⊗ Ḡ)⁻¹ vec(g) built densely in float64."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape_probe.optim import KFAC, KroneckerFactors


def dense_preconditioned(factors: KroneckerFactors, grad: Tensor) -> Tensor:
    """(Ā ⊗ Ḡ)⁻¹ vec(grad) with column-stacking vec, reshaped back to out × in."""
    kronecker = torch.kron(factors.damped_activation, factors.damped_gradient)
    vec = grad.T.reshape(-1)
    solved = torch.linalg.solve(kronecker, vec)
    return solved.reshape(grad.shape[1], grad.shape[0]).T


def damped_by_hand(a: Tensor, g: Tensor, damping: float) -> tuple[Tensor, Tensor]:
    """Ā = A + π·sqrt(λ)·I and Ḡ = G + sqrt(λ)/π·I with π² = (tr A / dim A) / (tr G / dim G)."""
    pi = math.sqrt((float(torch.trace(a)) / a.shape[0]) / (float(torch.trace(g)) / g.shape[0]))
    eye_a, eye_g = torch.eye(a.shape[0], dtype=a.dtype), torch.eye(g.shape[0], dtype=g.dtype)
    return a + pi * math.sqrt(damping) * eye_a, g + math.sqrt(damping) / pi * eye_g


def weight_and_bias(module: nn.Module) -> Tensor:
    return torch.cat([module.weight.detach().reshape(module.weight.shape[0], -1), module.bias.detach()[:, None]], dim=1)


def gradient_matrix(module: nn.Module) -> Tensor:
    return torch.cat([module.weight.grad.reshape(module.weight.shape[0], -1), module.bias.grad[:, None]], dim=1)


def test_linear_factors_and_step_match_loops_and_the_dense_inverse() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    optimizer = KFAC(layer, lr=1.0, damping=0.05, inverse_every=1)
    outputs = layer(x)
    (outputs - y).pow(2).sum(dim=1).mean().backward()
    grad, before = gradient_matrix(layer), weight_and_bias(layer)
    optimizer.step()

    inputs = torch.cat([x, torch.ones(5, 1, dtype=torch.float64)], dim=1)
    deltas = 2 * (outputs.detach() - y)
    a = sum(torch.outer(inputs[i], inputs[i]) for i in range(5)) / 5
    g = sum(torch.outer(deltas[i], deltas[i]) for i in range(5)) / 5
    factors = optimizer.kronecker_factors(layer)
    torch.testing.assert_close(factors.activation, a)
    torch.testing.assert_close(factors.gradient, g)
    damped_a, damped_g = damped_by_hand(a, g, 0.05)
    torch.testing.assert_close(factors.damped_activation, damped_a)
    torch.testing.assert_close(factors.damped_gradient, damped_g)
    torch.testing.assert_close(before - weight_and_bias(layer), dense_preconditioned(factors, grad))


def test_conv2d_factors_sum_patches_per_example_and_average_gradients_over_positions() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, kernel_size=2, padding=1).double()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    optimizer = KFAC(conv, lr=1.0, damping=0.1, inverse_every=1)
    outputs = conv(x)
    outputs.pow(2).sum(dim=(1, 2, 3)).mean().backward()
    grad, before = gradient_matrix(conv), weight_and_bias(conv)
    optimizer.step()

    padded = F.pad(x, (1, 1, 1, 1))
    batch, positions = 2, outputs.shape[2] * outputs.shape[3]
    a = torch.zeros(9, 9, dtype=torch.float64)
    g = torch.zeros(3, 3, dtype=torch.float64)
    for i in range(batch):
        for row in range(outputs.shape[2]):
            for col in range(outputs.shape[3]):
                window = padded[i, :, row : row + 2, col : col + 2].reshape(-1)
                patch = torch.cat([window, torch.ones(1, dtype=torch.float64)])
                delta = 2 * outputs.detach()[i, :, row, col]
                a += torch.outer(patch, patch) / batch
                g += torch.outer(delta, delta) / (batch * positions)
    factors = optimizer.kronecker_factors(conv)
    torch.testing.assert_close(factors.activation, a)
    torch.testing.assert_close(factors.gradient, g)
    torch.testing.assert_close(before - weight_and_bias(conv), dense_preconditioned(factors, grad))


def test_running_average_and_inverses_kept_between_recomputations() -> None:
    torch.manual_seed(2)
    layer = nn.Linear(2, 2).double()
    optimizer = KFAC(layer, lr=1.0, damping=0.1, decay=0.25, inverse_every=2)
    batches = [torch.randn(4, 2, dtype=torch.float64) for _ in range(2)]
    batch_factors = []
    for step, x in enumerate(batches):
        outputs = layer(x)
        outputs.pow(2).sum(dim=1).mean().backward()
        grad, before = gradient_matrix(layer), weight_and_bias(layer)
        optimizer.step()
        optimizer.zero_grad()
        inputs = torch.cat([x, torch.ones(4, 1, dtype=torch.float64)], dim=1)
        batch_factors.append((inputs.T @ inputs / 4, 4 * outputs.detach().T @ outputs.detach() / 4))
        if step == 0:
            first = optimizer.kronecker_factors(layer)
    first_a, first_g = batch_factors[0]
    second_a, second_g = batch_factors[1]
    factors = optimizer.kronecker_factors(layer)
    torch.testing.assert_close(factors.activation, 0.25 * first_a + 0.75 * second_a)
    torch.testing.assert_close(factors.gradient, 0.25 * first_g + 0.75 * second_g)
    torch.testing.assert_close(before - weight_and_bias(layer), dense_preconditioned(first, grad))


def test_no_grad_forward_before_step_changes_nothing_and_other_parameters_take_sgd() -> None:
    results = []
    for evaluate_in_between in (False, True):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        optimizer = KFAC(model, lr=0.1)
        x = torch.randn(6, 3)
        model(x).pow(2).mean().backward()
        norm_weight, norm_grad = model[1].weight.detach().clone(), model[1].weight.grad.clone()
        if evaluate_in_between:
            with torch.no_grad():
                model(torch.randn(9, 3))
        optimizer.step()
        torch.testing.assert_close(model[1].weight.detach(), norm_weight - 0.1 * norm_grad)
        results.append([p.detach().clone() for p in model.parameters()])
    for plain, evaluated in zip(*results, strict=True):
        torch.testing.assert_close(plain, evaluated, rtol=0, atol=0)
