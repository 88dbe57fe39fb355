"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024, "SOAP: Improving and
Stabilizing Shampoo using Adam").

For a weight matrix W with gradient G, Shampoo's factors are running averages
of the gradient's outer products on each side, with coefficient β_s:

    L ← β_s · L + (1 − β_s) · G Gᵀ         R ← β_s · R + (1 − β_s) · Gᵀ G

and Q_L, Q_R their eigenvectors (columns by decreasing eigenvalue). SOAP runs
Adam on the gradient rotated into that basis and rotates the step back:

    G' = Q_Lᵀ G Q_R
    m ← β1 · m + (1 − β1) · G'             v ← β2 · v + (1 − β2) · G'²      (both held in the rotated basis)
    W ← W − η · √(1 − β2^t) / (1 − β1^t) · Q_L (m / (√v + ε)) Q_Rᵀ
    W ← (1 − η·λ) · W                      (decoupled weight decay, after the step)

and only then adds G to L and R, so a gradient never shapes the basis it is
rotated by. Every ``precondition_frequency`` steps the basis is refreshed
by one step of power iteration and a QR decomposition, Q ← qr(F · Q) for each
factor F, after ordering Q's columns (and v along that dimension) by their
estimated eigenvalues diag(Qᵀ F Q); m is rotated into the new basis. The
very first call only gathers the factors and computes their eigenvectors
exactly: **the weights do not move on the first step**. A tensor with more
dimensions (a conv kernel) has one factor per dimension, each rotated in turn;
a dimension longer than ``max_precond_dim`` is not rotated, and neither are 1-D
tensors unless ``precondition_1d`` (so biases take Adam steps, ε outside the
bias correction as written above).

This is our own implementation of the rule of the authors' code
(github.com/nikhilvyas/SOAP), with its defaults (η = 3e-3, β = (0.95, 0.95),
β_s = β2, ε = 1e-8, λ = 0.01, frequency 10, max_precond_dim 10000). Deliberate
differences: no ``merge_dims``, ``data_format`` or ``normalize_grads`` options;
the factors and eigenvectors are kept in the parameter's dtype (the authors
compute in float32); m is rotated back and forth only when the basis changes
(the authors do it after every step, which changes it by rounding only).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(2, 3))
    >>> optimizer = Soap([w], lr=0.1)
    >>> w.grad = torch.ones(2, 3)
    >>> optimizer.step()  # the first step only gathers statistics
    >>> bool((w == 1).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer


def rotate(t: Tensor, bases: list[Tensor | None], *, back: bool = False) -> Tensor:
    """``t`` with each dimension k multiplied by bases[k]ᵀ (into the basis), or bases[k] (``back``)."""
    for k, q in enumerate(bases):
        if q is not None:
            t = torch.movedim(torch.tensordot(t, q, dims=([k], [1 if back else 0])), -1, k)
    return t


def outer_product(g: Tensor, k: int) -> Tensor:
    """G_(k) G_(k)ᵀ: the gradient's products contracted over every dimension but k (G Gᵀ for k = 0 of a matrix)."""
    others = [i for i in range(g.ndim) if i != k]
    return torch.tensordot(g, g, dims=(others, others))


def eigenbasis(factor: Tensor) -> Tensor:
    """The eigenvectors of a symmetric ``factor``, as columns, by decreasing eigenvalue."""
    return torch.flip(torch.linalg.eigh(factor).eigenvectors, dims=[1])


class Soap(PerTensorOptimizer):
    """SOAP (formula in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η.
        betas: (β1, β2), Adam's moment coefficients.
        shampoo_beta: β_s, the factors' coefficient; None takes β2.
        eps: ε, added to √v.
        weight_decay: λ, decoupled (applied as η·λ·W after the step).
        precondition_frequency: refresh the basis every this many steps.
        max_precond_dim: dimensions longer than this are not rotated.
        precondition_1d: rotate 1-D tensors too (one factor g gᵀ).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        precondition_1d: bool = False,
    ) -> None:
        coefficients = (*betas, betas[1] if shampoo_beta is None else shampoo_beta)
        if lr <= 0.0 or not all(0.0 <= b < 1.0 for b in coefficients) or eps < 0.0 or weight_decay < 0.0 \
                or precondition_frequency < 1:
            raise ValueError("SOAP needs lr > 0, betas in [0, 1), eps ≥ 0, weight_decay ≥ 0 and a frequency ≥ 1")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "shampoo_beta": shampoo_beta, "eps": eps,
                                  "weight_decay": weight_decay, "precondition_frequency": precondition_frequency,
                                  "max_precond_dim": max_precond_dim, "precondition_1d": precondition_1d})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One SOAP step on ``p`` (see the module docstring)."""
        beta1, beta2 = group["betas"]
        g = p.grad
        if "factors" not in state:
            rotated = p.ndim > 1 or group["precondition_1d"]
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["factors"] = [torch.zeros(n, n, dtype=p.dtype, device=p.device)
                                if rotated and n <= group["max_precond_dim"] else None for n in p.shape]
            self._gather(g, group, state)
            state["bases"] = [None if f is None else eigenbasis(f) for f in state["factors"]]
            return
        state["step"] += 1
        step = state["step"]
        g_rotated = rotate(g, state["bases"])
        state["exp_avg"].lerp_(g_rotated, 1.0 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(g_rotated, g_rotated, value=1.0 - beta2)
        adam = state["exp_avg"] / (state["exp_avg_sq"].sqrt() + group["eps"])
        size = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
        p.sub_(rotate(adam, state["bases"], back=True), alpha=size)
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        self._gather(g, group, state)
        if step % group["precondition_frequency"] == 0 and any(q is not None for q in state["bases"]):
            self._refresh(state)

    @staticmethod
    def _gather(g: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Add the gradient's outer products to the factors."""
        beta = group["betas"][1] if group["shampoo_beta"] is None else group["shampoo_beta"]
        for k, factor in enumerate(state["factors"]):
            if factor is not None:
                factor.lerp_(outer_product(g, k), 1.0 - beta)

    @staticmethod
    def _refresh(state: dict[str, Any]) -> None:
        """One power-iteration step and QR per factor; v follows its columns' new order, m the new basis."""
        momentum = rotate(state["exp_avg"], state["bases"], back=True)
        bases = []
        for k, (factor, q) in enumerate(zip(state["factors"], state["bases"])):
            if q is None:
                bases.append(None)
                continue
            order = torch.argsort(torch.diagonal(q.T @ factor @ q), descending=True)
            state["exp_avg_sq"] = state["exp_avg_sq"].index_select(k, order)
            bases.append(torch.linalg.qr(factor @ q[:, order]).Q)
        state["bases"] = bases
        state["exp_avg"] = rotate(momentum, bases)
