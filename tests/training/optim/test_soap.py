"""SOAP against its rule, re-stated by hand in float64 with numpy.

The restatement keeps Shampoo's factors L and R, takes their eigenvectors with
numpy, runs Adam on Q_Lᵀ G Q_R and rotates back, and refreshes the basis by one
power-iteration step followed by a Gram–Schmidt QR. Eigenvectors are defined
up to sign; the step Q_L (m / (√v + ε)) Q_Rᵀ does not depend on those signs, so
the comparison is exact to rounding. (Within an eigenvalue shared by several
eigenvectors — the zero eigenvalue of a factor of rank two below its size — the
basis is any rotation of them, and so is the step; the shapes tested leave one
zero eigenvalue at most.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.optim import Soap


def random(*shape: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def descending_eigenvectors(factor: np.ndarray) -> np.ndarray:
    _, vectors = np.linalg.eigh(factor)
    return vectors[:, ::-1]


def gram_schmidt(a: np.ndarray) -> np.ndarray:
    q = np.zeros_like(a)
    for j in range(a.shape[1]):
        v = a[:, j] - q[:, :j] @ (q[:, :j].T @ a[:, j])
        q[:, j] = v / np.linalg.norm(v)
    return q


def soap_by_hand(w: np.ndarray, grads: list[np.ndarray], lr: float, beta1: float, beta2: float, shampoo: float,
                 eps: float, decay: float, frequency: int) -> np.ndarray:
    w = w.copy()
    left, right = np.zeros((w.shape[0],) * 2), np.zeros((w.shape[1],) * 2)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads):  # t counts the steps that moved the weights
        if t > 0:
            rotated = q_left.T @ g @ q_right
            m = beta1 * m + (1 - beta1) * rotated
            v = beta2 * v + (1 - beta2) * rotated**2
            size = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
            w = w - size * q_left @ (m / (np.sqrt(v) + eps)) @ q_right.T
            w = (1 - lr * decay) * w
        left = shampoo * left + (1 - shampoo) * g @ g.T
        right = shampoo * right + (1 - shampoo) * g.T @ g
        if t == 0:
            q_left, q_right = descending_eigenvectors(left), descending_eigenvectors(right)
        elif t % frequency == 0:
            m_original = q_left @ m @ q_right.T
            order_left = np.argsort(-np.diag(q_left.T @ left @ q_left), kind="stable")
            order_right = np.argsort(-np.diag(q_right.T @ right @ q_right), kind="stable")
            v = v[order_left][:, order_right]
            q_left = gram_schmidt(left @ q_left[:, order_left])
            q_right = gram_schmidt(right @ q_right[:, order_right])
            m = q_left.T @ m_original @ q_right
    return w


def run_soap(w: np.ndarray, grads: list[np.ndarray], **settings: object) -> np.ndarray:
    p = nn.Parameter(torch.tensor(w))
    optimizer = Soap([p], **settings)
    for g in grads:
        p.grad = torch.tensor(g)
        optimizer.step()
    return p.detach().numpy()


@pytest.mark.parametrize("shape", [(3, 4), (4, 3)])
def test_soap_is_adam_in_the_eigenbasis_of_shampoos_factors_refreshed_by_power_iteration(
        shape: tuple[int, int]) -> None:
    """Six gradients with a refresh every two steps: statistics only, Adam steps, and two refreshes."""
    w, grads = random(*shape, seed=0), [random(*shape, seed=1 + t) for t in range(6)]
    settings = {"lr": 0.05, "betas": (0.9, 0.8), "shampoo_beta": 0.7, "eps": 1e-8, "weight_decay": 0.1,
                "precondition_frequency": 2}
    expected = soap_by_hand(w, grads, 0.05, 0.9, 0.8, 0.7, 1e-8, 0.1, frequency=2)
    np.testing.assert_allclose(run_soap(w, grads, **settings), expected, rtol=0, atol=1e-12)


def test_the_first_step_moves_nothing_and_the_second_is_the_rotated_sign() -> None:
    """With one gradient G = U S Vᵀ seen, the basis is (U, V): Adam's first step m/√v = sign(G') and
    G' = Uᵀ G V = S, so the step is −η·U Vᵀ — Muon's orthogonalised step (ε = 0, no decay)."""
    w, g = random(3, 5, seed=2), random(3, 5, seed=3)
    after_one = run_soap(w, [g], lr=0.1, eps=1e-10, weight_decay=0.0)
    np.testing.assert_array_equal(after_one, w)
    after_two = run_soap(w, [g, g], lr=0.1, eps=1e-10, weight_decay=0.0)
    u, _, vh = np.linalg.svd(g, full_matrices=False)
    # G's off-diagonal entries in its own basis are rounding noise, ε keeps them from a sign of ±1
    np.testing.assert_allclose(after_two - w, -0.1 * u @ vh, rtol=0, atol=1e-6)


def test_vectors_take_adam_steps_unless_preconditioned() -> None:
    """A bias is not rotated: its second step is Adam's first, −η·g/(|g| + ε/√(1 − β2)) (ε outside the
    bias correction)."""
    b, g = random(4, seed=4), random(4, seed=5)
    moved = run_soap(b, [g, g], lr=0.1, eps=1e-3, weight_decay=0.0) - b
    np.testing.assert_allclose(moved, -0.1 * g / (np.abs(g) + 1e-3 / np.sqrt(1 - 0.95)), rtol=0, atol=1e-14)
    # rotated, g is (±||g||, 0, 0, 0) in the eigenbasis of g gᵀ: the step is −η·g/||g||
    rotated = run_soap(b, [g, g], lr=0.1, eps=1e-10, weight_decay=0.0, precondition_1d=True) - b
    np.testing.assert_allclose(rotated, -0.1 * g / np.linalg.norm(g), rtol=0, atol=1e-6)


def test_a_conv_kernel_is_rotated_along_every_dimension_but_the_long_ones() -> None:
    p = nn.Parameter(torch.zeros(4, 3, 2, 20, dtype=torch.float64))
    optimizer = Soap([p], max_precond_dim=10)
    p.grad = torch.ones_like(p)
    optimizer.step()
    assert [None if q is None else tuple(q.shape) for q in optimizer.state[p]["bases"]] == [(4, 4), (3, 3), (2, 2),
                                                                                           None]
