"""Fromage: Frobenius-matched gradient descent (Bernstein et al., 2020, Algorithm 1).

For each parameter tensor W with gradient g (every tensor, biases included, is
its own layer):

    W ← (W − η · ||W||_F / ||g||_F · g) / sqrt(1 + η²)

The step has relative size η in Frobenius norm, the axis on which deep relative
trust bounds the change of the network (DESIGN.md §1, §5); the shrink
1/sqrt(1 + η²) undoes the norm growth a step orthogonal to W would cause, so
weight norms stay put. A tensor whose weight or gradient norm is zero takes the
plain step η · g (the trust ratio is replaced by 1) and the same shrink. With
``p_bound``, each ||W|| is then capped at ``p_bound`` × its norm at the first step.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> w.grad = torch.tensor([1.0, 0.0])
    >>> Fromage([w], lr=0.5).step()
    >>> [round(x, 4) for x in w.tolist()]
    [0.4472, 3.5777]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer


class Fromage(PerTensorOptimizer):
    """Fromage, per DESIGN.md §5.

    Args:
        params: parameters or parameter groups.
        lr: η, the relative step size per layer (0.01 is the paper's default).
        p_bound: if set, keep ||W||_F ≤ p_bound × ||W_initial||_F for every tensor.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        p_bound: float | None = None,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"Fromage needs a positive learning rate, not {lr}")
        if p_bound is not None and p_bound <= 0.0:
            raise ValueError(f"p_bound must be positive, not {p_bound}")
        super().__init__(params, {"lr": lr, "p_bound": p_bound})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One Fromage step on ``p`` (see the module docstring)."""
        lr, p_bound = group["lr"], group["p_bound"]
        if p_bound is not None and "initial_norm" not in state:
            state["initial_norm"] = torch.linalg.vector_norm(p).clone()
        weight_norm = torch.linalg.vector_norm(p)
        grad_norm = torch.linalg.vector_norm(p.grad)
        usable = (weight_norm > 0) & (grad_norm > 0)
        trust_ratio = torch.where(usable, weight_norm / torch.where(usable, grad_norm, 1.0), 1.0)
        p.sub_(lr * trust_ratio * p.grad).div_(math.sqrt(1.0 + lr**2))
        if p_bound is not None:
            limit = p_bound * state["initial_norm"]
            new_norm = torch.linalg.vector_norm(p)
            p.mul_(torch.where(new_norm > limit, limit / new_norm, 1.0))
