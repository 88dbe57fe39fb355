"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017).

For each parameter tensor W with gradient g, learning rate γ, trust
coefficient τ, weight decay β and momentum m:

    λ = τ · ||W||_F / (||g||_F + β · ||W||_F)        (local learning rate)
    v ← m · v + γ · λ · (g + β · W)
    W ← W − v

With τ = 1, β = 0 and m = 0 this is W ← W − γ · ||W|| / ||g|| · g: Fromage's
relative step without its 1/sqrt(1 + γ²) shrink, so weight norms grow by a
factor of about sqrt(1 + γ²) per step. A tensor whose weight norm or
denominator is zero takes λ = 1 (a plain momentum-SGD step). Every tensor,
biases included, is its own layer.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> w.grad = torch.tensor([1.0, 0.0])
    >>> Lars([w], lr=0.5).step()
    >>> w.tolist()
    [0.5, 4.0]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer, heavy_ball


class Lars(PerTensorOptimizer):
    """LARS with optional momentum and weight decay (formula in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: γ, the global learning rate.
        momentum: m, heavy-ball momentum applied after the trust-ratio scaling.
        weight_decay: β, L2 weight decay, included in the trust ratio.
        trust_coefficient: τ, multiplies the local learning rate.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1.0,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= momentum < 1.0 or weight_decay < 0.0 or trust_coefficient <= 0.0:
            raise ValueError("LARS needs lr > 0, momentum in [0, 1), weight_decay ≥ 0 and trust_coefficient > 0")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        super().__init__(params, {**defaults, "trust_coefficient": trust_coefficient})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One LARS step on ``p`` (see the module docstring)."""
        lr, decay = group["lr"], group["weight_decay"]
        weight_norm = torch.linalg.vector_norm(p)
        denominator = torch.linalg.vector_norm(p.grad) + decay * weight_norm
        usable = (weight_norm > 0) & (denominator > 0)
        local_lr = torch.where(
            usable, group["trust_coefficient"] * weight_norm / torch.where(usable, denominator, 1.0), 1.0
        )
        p.sub_(heavy_ball(state, lr * local_lr * (p.grad + decay * p), group["momentum"]))
