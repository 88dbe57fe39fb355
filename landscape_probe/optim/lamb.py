"""LAMB: layer-wise adaptive moments (You et al., 2020, "Large Batch Optimization for Deep Learning").

For each parameter tensor W (a "layer") with gradient g at step t, learning
rate η, weight decay λ, coefficients β1, β2 and ε:

    m ← β1 · m + (1 − β1) · g              m̂ = m / (1 − β1^t)
    v ← β2 · v + (1 − β2) · g²             v̂ = v / (1 − β2^t)
    r = m̂ / (√v̂ + ε) + λ · W
    W ← W − η · ||W||_F / ||r||_F · r

The trust ratio ||W|| / ||r|| is 1 when either norm is 0 (a fresh zero bias
takes a plain Adam step). This is the paper's Algorithm 2 with φ the identity
(no clipping of ||W||); every tensor, biases included, is its own layer.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> Lamb([w], lr=0.1, eps=0.0).step()
    >>> [round(x, 4) for x in w.tolist()]
    [2.6464, 4.3536]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer


class Lamb(PerTensorOptimizer):
    """LAMB (formula in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η.
        betas: (β1, β2), Adam's moment coefficients.
        eps: ε, added to √v̂.
        weight_decay: λ, added to the Adam direction before the trust ratio.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0.0 or not all(0.0 <= b < 1.0 for b in betas) or eps < 0.0 or weight_decay < 0.0:
            raise ValueError("LAMB needs lr > 0, betas in [0, 1), eps ≥ 0 and weight_decay ≥ 0")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One LAMB step on ``p`` (see the module docstring)."""
        beta1, beta2 = group["betas"]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        step = state["step"]
        state["exp_avg"].lerp_(p.grad, 1.0 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
        first = state["exp_avg"] / (1.0 - beta1**step)
        second = state["exp_avg_sq"] / (1.0 - beta2**step)
        direction = first / (second.sqrt() + group["eps"]) + group["weight_decay"] * p
        weight_norm = torch.linalg.vector_norm(p)
        direction_norm = torch.linalg.vector_norm(direction)
        usable = (weight_norm > 0) & (direction_norm > 0)
        trust_ratio = torch.where(usable, weight_norm / torch.where(usable, direction_norm, 1.0), 1.0)
        p.sub_(direction * (group["lr"] * trust_ratio))
