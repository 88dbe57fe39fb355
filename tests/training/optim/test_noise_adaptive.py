"""Noise-adaptive SGD: the step rule against a plain loop, and the noise estimate against known statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape_probe.optim import NoiseAdaptiveSGD


def test_three_steps_match_a_plain_loop_over_coordinates() -> None:
    lr, beta, smoothness = 0.2, 0.5, 2.0
    gradients = [[1.0, -2.0, 0.5, 3.0], [1.1, 1.0, 0.5, 2.0], [0.9, -1.0, 0.7, 2.5]]
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = NoiseAdaptiveSGD([p], lr=lr, beta=beta, smoothness=smoothness)
    expected = [0.0] * 4
    mean, variance = list(gradients[0]), [0.0] * 4
    for t, g in enumerate(gradients):
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        for c in range(4):
            if t > 0:
                deviation = g[c] - mean[c]
                mean[c] += (1 - beta) * deviation
                variance[c] = beta * (variance[c] + (1 - beta) * deviation**2)
            step = lr if variance[c] == 0 else min(lr, mean[c] ** 2 / (32 * smoothness * variance[c]))
            expected[c] -= step * g[c]
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-13, atol=1e-13)
    sizes = optimizer.step_sizes(p).tolist()
    assert min(sizes) < lr and max(sizes) == lr


def test_step_is_batch_size_over_twice_critical_batch_times_smoothness() -> None:
    """η_c = B / (2·B*_c·L) with B*_c = 16·σ_c²/g_c² and σ_c² = B·v_c, for any batch size B."""
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = NoiseAdaptiveSGD([p], lr=100.0, beta=0.9, smoothness=3.0)
    for g in ([1.0, 2.0, -1.0], [2.0, 1.0, -1.5], [1.5, 2.5, -0.5]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    state = optimizer.state[p]
    for batch_size in (1, 7, 250):
        sigma_squared = batch_size * state["variance"]
        critical = 16 * sigma_squared / state["mean"] ** 2
        torch.testing.assert_close(optimizer.step_sizes(p), batch_size / (2 * critical * 3.0))


def test_running_estimates_converge_to_the_gradient_mean_and_variance() -> None:
    generator = torch.Generator().manual_seed(0)
    p = nn.Parameter(torch.zeros(1000, dtype=torch.float64))
    optimizer = NoiseAdaptiveSGD([p], lr=1e-12, beta=0.99)
    for _ in range(2000):
        p.grad = 1.0 + 0.5 * torch.randn(1000, generator=generator, dtype=torch.float64)
        optimizer.step()
    state = optimizer.state[p]
    assert float(state["mean"].mean()) == pytest.approx(1.0, abs=0.01)
    assert float(state["variance"].mean()) == pytest.approx(0.25, rel=0.03)
    assert float(optimizer.step_sizes(p).max()) == 1e-12
    optimizer.param_groups[0]["lr"] = 1.0
    assert float(optimizer.step_sizes(p).median()) == pytest.approx(1.0 / (32 * 0.25), rel=0.1)
