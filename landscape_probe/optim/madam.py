"""Madam: multiplicative Adam (Bernstein, Zhao, Meister, Liu, Anandkumar & Yue,
"Learning compositional functions via multiplicative weight updates", NeurIPS 2020).

Entry by entry, with step size η and averaging constant β, at step t:

    v ← β · v + (1 − β) · g²
    g* = g / sqrt(v / (1 − βᵗ))            (0 where v is 0)
    g* ← clamp(g*, −g_bound, g_bound)
    W ← W ⊙ exp(−η · sign(W) ⊙ g*)
    W ← clamp(W, −W_max, W_max),   W_max = p_scale · rms(W at the first step)

Each entry changes by a factor between exp(−η·|g*|) and exp(η·|g*|): the
update is relative per synapse, and never changes a weight's sign, so entries
that start at zero (e.g. zero-initialised biases) stay at zero. The clamp on
g* matters after a run of small gradients: v is then small, so one spike
would give |g*| up to sqrt(1/(1 − β)) ≈ 32 and move the weight by a factor
exp(η·32); the clamp caps the factor at exp(η·g_bound).

Reference: the authors' PyTorch code, github.com/jxbz/madam,
``pytorch/optim/madam.py`` (defaults lr 0.01, p_scale 3, g_bound 10, β 0.999).
This class follows it step for step. Deliberate differences:

- β is a constructor argument (the reference fixes it at 0.999, our default);
- the bound W_max is kept as a tensor on the parameter's device (the reference
  stores a Python float), which changes nothing numerically.

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

from landscape_probe.optim.per_tensor import PerTensorOptimizer


class Madam(PerTensorOptimizer):
    """Madam (formulas in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η (0.01 is the paper's default).
        beta: β, the averaging constant of the squared gradients.
        p_scale: the bound on |W| in units of the tensor's initial root-mean-square.
        g_bound: the bound on |g*|, the normalised gradient (10 in the reference).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        beta: float = 0.999,
        p_scale: float = 3.0,
        g_bound: float = 10.0,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= beta < 1.0 or p_scale <= 0.0 or g_bound <= 0.0:
            raise ValueError("Madam needs lr > 0, beta in [0, 1), p_scale > 0 and g_bound > 0")
        super().__init__(params, {"lr": lr, "beta": beta, "p_scale": p_scale, "g_bound": g_bound})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("g_bound", 10.0)  # optimiser states saved before the clamp existed

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
        normalised = normalised.clamp(-group["g_bound"], group["g_bound"])
        p.mul_(torch.exp(-lr * torch.sign(p) * normalised))
        p.copy_(torch.minimum(torch.maximum(p, -state["max"]), state["max"]))
