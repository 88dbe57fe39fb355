"""Lion, LAMB and Muon against their update formulas, re-stated by hand in float64.

Lion and LAMB are re-stated coordinate by coordinate in plain Python floats over
several steps with changing gradients. Muon's orthogonalisation is compared with
the exact one, U Vᵀ from a float64 SVD of the momentum, within the accuracy its
Newton–Schulz iteration states.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from landscape_probe.optim import Lamb, Lion, MuonWithAdamW

STEPS = 4


def random(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gradients(shape: tuple[int, ...]) -> list[Tensor]:
    return [random(*shape, seed=10 + t) for t in range(STEPS)]


def run(optimizer_class: type[torch.optim.Optimizer], w: Tensor, grads: list[Tensor], **settings: float) -> Tensor:
    p = nn.Parameter(w.clone())
    optimizer = optimizer_class([p], **settings)
    for g in grads:
        p.grad = g.clone()
        optimizer.step()
    return p.detach()


# ---------------------------------------------------------------- Lion


def lion_by_hand(w: list[float], grads: list[list[float]], lr: float, beta1: float, beta2: float,
                 decay: float) -> list[float]:
    w, m = list(w), [0.0] * len(w)
    for g in grads:
        for i in range(len(w)):
            c = beta1 * m[i] + (1 - beta1) * g[i]
            sign = (c > 0) - (c < 0)
            w[i] = w[i] - lr * (sign + decay * w[i])
            m[i] = beta2 * m[i] + (1 - beta2) * g[i]
    return w


def test_lion_follows_the_sign_of_interpolated_momentum() -> None:
    w, grads = random(3, 4, seed=0), gradients((3, 4))
    settings = {"lr": 0.05, "betas": (0.8, 0.95), "weight_decay": 0.3}
    expected = lion_by_hand(w.reshape(-1).tolist(), [g.reshape(-1).tolist() for g in grads], 0.05, 0.8, 0.95, 0.3)
    torch.testing.assert_close(run(Lion, w, grads, **settings).reshape(-1), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-15)


def test_lion_moves_every_coordinate_by_exactly_lr_without_decay() -> None:
    w = random(5, seed=1)
    moved = run(Lion, w, [1e-6 * random(5, seed=2)], lr=0.1) - w
    torch.testing.assert_close(moved.abs(), torch.full_like(w, 0.1), rtol=0, atol=1e-15)


# ---------------------------------------------------------------- LAMB


def lamb_by_hand(w: list[float], grads: list[list[float]], lr: float, beta1: float, beta2: float, eps: float,
                 decay: float) -> list[float]:
    w, m, v = list(w), [0.0] * len(w), [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        r = []
        for i in range(len(w)):
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            r.append(m_hat / (math.sqrt(v_hat) + eps) + decay * w[i])
        w_norm, r_norm = math.sqrt(sum(x * x for x in w)), math.sqrt(sum(x * x for x in r))
        trust = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        w = [w[i] - lr * trust * r[i] for i in range(len(w))]
    return w


@pytest.mark.parametrize("scale", [1.0, 0.0], ids=["weights", "zero-weights"])
def test_lamb_scales_the_adam_step_by_the_layer_trust_ratio(scale: float) -> None:
    w, grads = scale * random(4, 3, seed=3), gradients((4, 3))
    settings = {"lr": 0.02, "betas": (0.9, 0.99), "eps": 1e-6, "weight_decay": 0.1}
    expected = lamb_by_hand(w.reshape(-1).tolist(), [g.reshape(-1).tolist() for g in grads], 0.02, 0.9, 0.99, 1e-6, 0.1)
    torch.testing.assert_close(run(Lamb, w, grads, **settings).reshape(-1), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-14)


def test_lamb_first_step_changes_each_layer_by_lr_relative_to_its_norm() -> None:
    w = random(6, 5, seed=4)
    moved = run(Lamb, w, [random(6, 5, seed=5)], lr=0.01, weight_decay=0.0) - w
    assert float(moved.norm() / w.norm()) == pytest.approx(0.01, rel=1e-12)


# ---------------------------------------------------------------- Muon


def orthogonal_factor(m: Tensor) -> Tensor:
    """U Vᵀ of the float64 SVD M = U S Vᵀ: the exact orthogonalisation."""
    u, _, vh = torch.linalg.svd(m, full_matrices=False)
    return u @ vh


def muon_first_update(w: Tensor, g: Tensor, lr: float, momentum: float) -> Tensor:
    """O = (W − W') / (s·η) after one step from fresh state (no weight decay), with s = 0.2·sqrt(max(rows, cols))."""
    p = nn.Parameter(w.clone())
    p.grad = g.clone()
    MuonWithAdamW([p], lr=lr, momentum=momentum).step()
    return (w - p.detach()) / (lr * 0.2 * math.sqrt(max(w.shape)))


@pytest.mark.parametrize("shape", [(3, 5), (6, 2), (4, 4)])
def test_muon_update_is_the_orthogonalised_momentum_within_newton_schulz_accuracy(shape: tuple[int, int]) -> None:
    """torch.optim.Muon states that its five quintic Newton–Schulz steps give U S' Vᵀ with S' in about (0.5, 1.5).

    On the first step the Nesterov momentum is (1 − μ)·g + μ·(1 − μ)·g, a multiple of g, so
    the update should be U S' Vᵀ for the SVD g = U S Vᵀ: the same singular vectors, and
    singular values within 0.5 of 1 (plus bfloat16 rounding, ~1e-2).
    """
    w, g = random(*shape, seed=6), random(*shape, seed=7)
    update = muon_first_update(w, g, lr=0.01, momentum=0.9)
    exact = orthogonal_factor(g)
    assert float(torch.linalg.matrix_norm(update - exact, ord=2)) < 0.5
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    in_g_basis = u.T @ update @ vh.T  # diagonal when the singular vectors agree
    diagonal = torch.diagonal(in_g_basis)
    assert float((in_g_basis - torch.diag(diagonal)).abs().max()) < 3e-2
    assert bool(((diagonal > 0.5) & (diagonal < 1.5)).all())


def test_muon_steps_non_matrices_with_adamw() -> None:
    """A bias's first AdamW step is −lr·sign(g) (m̂/√v̂ = g/|g|, ε aside)."""
    bias = nn.Parameter(random(4, seed=8))
    bias.grad = random(4, seed=9)
    before = bias.detach().clone()
    MuonWithAdamW([bias], lr=0.01, eps=0.0).step()
    torch.testing.assert_close(bias.detach() - before, -0.01 * bias.grad.sign(), rtol=0, atol=1e-15)
