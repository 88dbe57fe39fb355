"""Madam: multiplicative Adam (Bernstein, Zhao, Meister, Liu, Anandkumar & Yue,
"Learning compositional functions via multiplicative weight updates", NeurIPS 2020).

Entry by entry, with step size η and averaging constant β, at step t:

    v ← β · v + (1 − β) · g²
    g* = g / sqrt(v / (1 − βᵗ))            (0 where v is 0)
    W ← W ⊙ exp(−η · sign(W) ⊙ g*)
    W ← clamp(W, −W_max, W_max),   W_max = p_scale · rms(W at the first step)

Each entry changes by a factor between exp(−η·|g*|) and exp(η·|g*|): the
update is relative per synapse, and never changes a weight's sign, so entries
that start at zero (e.g. zero-initialised biases) stay at zero.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    >>> w.grad = torch.tensor([1.0, 1.0])
    >>> Madam([w], lr=0.1).step()
    >>> [round(x, 4) for x in w.tolist()]
    [1.8097, -1.1052]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.training.optim.per_tensor import PerTensorOptimizer


class Madam(PerTensorOptimizer):
    """Madam (formulas in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η (0.01 is the paper's default).
        beta: β, the averaging constant of the squared gradients.
        p_scale: the bound on |W| in units of the tensor's initial root-mean-square.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        beta: float = 0.999,
        p_scale: float = 3.0,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= beta < 1.0 or p_scale <= 0.0:
            raise ValueError("Madam needs lr > 0, beta in [0, 1) and p_scale > 0")
        super().__init__(params, {"lr": lr, "beta": beta, "p_scale": p_scale})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One Madam step on ``p`` (see the module docstring)."""
        lr, beta = group["lr"], group["beta"]
        if not state:
            state["step"] = 0
            state["max"] = group["p_scale"] * p.pow(2).mean().sqrt()
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        state["exp_avg_sq"].mul_(beta).add_((1.0 - beta) * p.grad.pow(2))
        v_hat = state["exp_avg_sq"] / (1.0 - beta ** state["step"])
        normalised = torch.where(v_hat > 0, p.grad / torch.where(v_hat > 0, v_hat, 1.0).sqrt(), 0.0)
        p.mul_(torch.exp(-lr * torch.sign(p) * normalised))
        p.copy_(torch.minimum(torch.maximum(p, -state["max"]), state["max"]))
