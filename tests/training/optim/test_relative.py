"""Fromage, LARS, Nero, Madam and AGD against their update formulas, written out by hand in float64."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from landscape_probe.training import diagnostics
from landscape_probe.optim import AGD, Fromage, Lars, Madam, Nero


def parameter(values: Tensor, grad: Tensor) -> nn.Parameter:
    p = nn.Parameter(values.clone())
    p.grad = grad.clone()
    return p


def random(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def frobenius(x: Tensor) -> float:
    return math.sqrt(sum(float(v) ** 2 for v in x.reshape(-1)))


# ---------------------------------------------------------------- Fromage


def fromage_step(w: Tensor, g: Tensor, lr: float) -> tuple[Tensor, Tensor]:
    """One Fromage step on a fresh parameter; returns (W before, W after)."""
    p = parameter(w, g)
    Fromage([p], lr=lr).step()
    return w, p.detach()


def test_fromage_step_equals_the_closed_form() -> None:
    w, g, lr = random(4, 3, seed=0), random(4, 3, seed=1), 0.3
    _, after = fromage_step(w, g, lr)
    expected = (w - lr * frobenius(w) / frobenius(g) * g) / math.sqrt(1 + lr * lr)
    torch.testing.assert_close(after, expected, rtol=1e-13, atol=1e-13)


def test_fromage_zero_weight_takes_a_plain_step() -> None:
    g, lr = random(5, seed=2), 0.1
    _, after = fromage_step(torch.zeros(5, dtype=torch.float64), g, lr)
    torch.testing.assert_close(after, -lr * g / math.sqrt(1 + lr * lr))


@pytest.mark.parametrize("lr", [1e-3, 1e-2, 1e-1])
def test_fromage_relative_update_is_eta_over_sqrt_one_plus_eta_squared(lr: float) -> None:
    """With c = sqrt(1 + η²), ĝ = g/||g|| and cos θ = ⟨W, ĝ⟩/||W||, ΔW = (W(1 − c) − η||W||ĝ)/c, so

    ||ΔW||/||W|| = sqrt((1 − c)² − 2η(1 − c)cos θ + η²) / c = η/c + (η²/2)·cos θ + O(η³).
    """
    w, g = random(6, 5, seed=3), random(6, 5, seed=4)
    _, after = fromage_step(w, g, lr)
    relative = frobenius(after - w) / frobenius(w)
    c = math.sqrt(1 + lr * lr)
    cos_theta = float((w * g).sum()) / (frobenius(w) * frobenius(g))
    exact = math.sqrt((1 - c) ** 2 - 2 * lr * (1 - c) * cos_theta + lr * lr) / c
    assert relative == pytest.approx(exact, rel=1e-12)
    assert abs(relative - lr / c) <= lr * lr


def test_fromage_spectral_shift_obeys_mirsky() -> None:
    """Mirsky: sqrt(Σ_i (σ_i(W + ΔW) − σ_i(W))²) ≤ ||ΔW||_F.

    So the spectral shift max_i |σ_i(W + ΔW) − σ_i(W)| / rms σ(W) that ``probe train`` records is at most
    ||ΔW||_F / rms σ(W) = (||ΔW||_F / ||W||_F) · sqrt(min(m, n)), since rms σ(W) = ||W||_F / sqrt(min(m, n)).
    """
    for seed in range(5):
        w, g = random(7, 4, seed=10 + seed), random(7, 4, seed=20 + seed)
        _, after = fromage_step(w, g, 0.2)
        before_sv, after_sv = torch.linalg.svdvals(w), torch.linalg.svdvals(after)
        step = frobenius(after - w)
        assert float((after_sv - before_sv).norm()) <= step * (1 + 1e-12)
        rms_sigma = frobenius(w) / math.sqrt(4)  # min(7, 4) singular values
        recorded = diagnostics.spectral_shift(w, after)
        assert recorded == pytest.approx(float((after_sv - before_sv).abs().max()) / rms_sigma, rel=1e-12)
        assert recorded <= step / rms_sigma * (1 + 1e-12)


def test_fromage_p_bound_caps_the_norm_at_its_multiple_of_the_initial_norm() -> None:
    w = random(3, 3, seed=5)
    p = parameter(w, -w)
    optimizer = Fromage([p], lr=0.5, p_bound=1.2)
    for _ in range(5):
        p.grad = -p.detach().clone()
        optimizer.step()
    assert frobenius(p.detach()) == pytest.approx(1.2 * frobenius(w), rel=1e-12)


# ---------------------------------------------------------------- LARS


def test_lars_two_steps_match_the_formula_with_momentum_and_weight_decay() -> None:
    w, lr, m, beta, tau = random(4, 3, seed=6), 0.05, 0.9, 0.01, 0.5
    grads = [random(4, 3, seed=7), random(4, 3, seed=8)]
    p = nn.Parameter(w.clone())
    optimizer = Lars([p], lr=lr, momentum=m, weight_decay=beta, trust_coefficient=tau)
    expected, velocity = w.clone(), torch.zeros_like(w)
    for g in grads:
        p.grad = g.clone()
        optimizer.step()
        local = tau * frobenius(expected) / (frobenius(g) + beta * frobenius(expected))
        velocity = m * velocity + lr * local * (g + beta * expected)
        expected = expected - velocity
    torch.testing.assert_close(p.detach(), expected, rtol=1e-13, atol=1e-13)


def test_lars_without_momentum_is_fromage_without_the_shrink() -> None:
    w, g, lr = random(3, 5, seed=9), random(3, 5, seed=10), 0.1
    p = parameter(w, g)
    Lars([p], lr=lr).step()
    _, fromage = fromage_step(w, g, lr)
    torch.testing.assert_close(p.detach(), fromage * math.sqrt(1 + lr * lr), rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- Nero


def test_nero_two_steps_match_the_per_neuron_formula() -> None:
    lr, beta = 0.05, 0.9
    w, b = random(3, 4, seed=11), random(3, seed=12)
    grads = [(random(3, 4, seed=13), random(3, seed=14)), (random(3, 4, seed=15), random(3, seed=16))]
    pw, pb = nn.Parameter(w.clone()), nn.Parameter(b.clone())
    optimizer = Nero([pw, pb], lr=lr, beta=beta)
    rows = [w[i].clone() for i in range(3)]
    targets = [frobenius(row - row.mean()) for row in rows]
    row_avg, bias = [0.0] * 3, b.clone()
    bias_avg, bias_scale = torch.zeros(3, dtype=torch.float64), float(b.abs().mean())
    for t, (gw, gb) in enumerate(grads, start=1):
        pw.grad, pb.grad = gw.clone(), gb.clone()
        optimizer.step()
        for i in range(3):
            row_avg[i] = beta * row_avg[i] + (1 - beta) * frobenius(gw[i]) ** 2
            stepped = rows[i] - lr * frobenius(rows[i]) / math.sqrt(row_avg[i] / (1 - beta**t)) * gw[i]
            centred = stepped - stepped.mean()
            rows[i] = centred * targets[i] / frobenius(centred)
        bias_avg = beta * bias_avg + (1 - beta) * gb**2
        bias = bias - lr * bias_scale * gb / torch.sqrt(bias_avg / (1 - beta**t))
    torch.testing.assert_close(pw.detach(), torch.stack(rows), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pb.detach(), bias, rtol=1e-12, atol=1e-12)


def test_nero_keeps_neurons_balanced_at_their_initial_norm() -> None:
    w = random(5, 6, 2, seed=17)
    p = nn.Parameter(w.clone())
    optimizer = Nero([p], lr=0.1)
    for seed in range(4):
        p.grad = random(5, 6, 2, seed=30 + seed)
        optimizer.step()
    rows, initial = p.detach().reshape(5, -1), w.reshape(5, -1)
    torch.testing.assert_close(rows.mean(dim=1), torch.zeros(5, dtype=torch.float64), atol=1e-13, rtol=0)
    torch.testing.assert_close(rows.norm(dim=1), (initial - initial.mean(1, keepdim=True)).norm(dim=1))


# ---------------------------------------------------------------- Madam


def test_madam_two_steps_match_the_multiplicative_formula() -> None:
    lr, beta, p_scale = 0.1, 0.9, 3.0
    w = random(4, 4, seed=18)
    grads = [random(4, 4, seed=19), random(4, 4, seed=20)]
    p = nn.Parameter(w.clone())
    optimizer = Madam([p], lr=lr, beta=beta, p_scale=p_scale)
    limit = p_scale * math.sqrt(float((w * w).mean()))
    expected, average = w.clone().reshape(-1).tolist(), [0.0] * 16
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        optimizer.step()
        for k, gk in enumerate(g.reshape(-1).tolist()):
            average[k] = beta * average[k] + (1 - beta) * gk * gk
            normalised = gk / math.sqrt(average[k] / (1 - beta**t))
            sign = math.copysign(1.0, expected[k]) if expected[k] != 0 else 0.0
            expected[k] = min(max(expected[k] * math.exp(-lr * sign * normalised), -limit), limit)
    expected_tensor = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(p.detach().reshape(-1), expected_tensor, rtol=1e-12, atol=1e-12)


def test_madam_clamps_at_p_scale_times_the_initial_rms() -> None:
    p = parameter(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([-1.0, -1.0], dtype=torch.float64))
    optimizer = Madam([p], lr=1.0, p_scale=1.0)
    for _ in range(3):
        p.grad = torch.tensor([-1.0, -1.0], dtype=torch.float64)
        optimizer.step()
    assert p.detach().max().item() == pytest.approx(math.sqrt(2.5))


# ---------------------------------------------------------------- AGD


def test_agd_step_matches_the_automatic_step_size() -> None:
    shapes = [(4, 3), (2, 4)]
    weights = [random(*s, seed=21 + i) for i, s in enumerate(shapes)]
    grads = [random(*s, seed=31 + i) for i, s in enumerate(shapes)]
    bias, bias_grad = random(4, seed=41), random(4, seed=42)
    params = [parameter(w, g) for w, g in zip(weights, grads)] + [parameter(bias, bias_grad)]
    optimizer = AGD(params, lr=0.7)
    optimizer.step()
    depth = 2
    gain = (math.sqrt(4 / 3) * frobenius(grads[0]) + math.sqrt(2 / 4) * frobenius(grads[1])) / depth
    eta = math.log((1 + math.sqrt(1 + 4 * gain)) / 2)
    assert optimizer.last_eta == pytest.approx(eta, rel=1e-13)
    for p, w, g, (rows, cols) in zip(params, weights, grads, shapes):
        expected = w - 0.7 * eta / depth * math.sqrt(rows / cols) * g / frobenius(g)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-13, atol=1e-13)
    expected_bias = bias - 0.7 * eta / depth * math.sqrt(4) * bias_grad / frobenius(bias_grad)
    torch.testing.assert_close(params[2].detach(), expected_bias, rtol=1e-13, atol=1e-13)
