"""Lion: evolved sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

For each parameter tensor W with gradient g, learning rate η, weight decay λ
and coefficients β1, β2, with m the momentum (zeros at first):

    c ← β1 · m + (1 − β1) · g
    W ← W − η · (sign(c) + λ · W)        (decoupled weight decay)
    m ← β2 · m + (1 − β2) · g

Every coordinate moves by exactly η (plus the decay), whatever the gradient's
scale, so Lion's learning rate is usually 3–10× smaller than AdamW's.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    >>> w.grad = torch.tensor([0.5, -3.0])
    >>> Lion([w], lr=0.1).step()
    >>> [round(x, 6) for x in w.tolist()]
    [0.9, -1.9]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer


class Lion(PerTensorOptimizer):
    """Lion (formula in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η.
        betas: (β1, β2): β1 interpolates the step's direction, β2 the momentum.
        weight_decay: λ, decoupled (applied as η·λ·W).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0.0 or not all(0.0 <= b < 1.0 for b in betas) or weight_decay < 0.0:
            raise ValueError("Lion needs lr > 0, betas in [0, 1) and weight_decay ≥ 0")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One Lion step on ``p`` (see the module docstring)."""
        beta1, beta2 = group["betas"]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
        momentum = state["exp_avg"]
        direction = torch.sign(momentum * beta1 + p.grad * (1.0 - beta1))
        p.mul_(1.0 - group["lr"] * group["weight_decay"]).add_(direction, alpha=-group["lr"])
        momentum.lerp_(p.grad, 1.0 - beta2)
