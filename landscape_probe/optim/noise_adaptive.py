"""Noise-adaptive SGD: a per-coordinate step size from the gradient's signal-to-noise ratio.

From McAllester's lecture notes on SGD: for a coordinate c with mean gradient
g_c, per-example gradient variance σ_c², batch size B and smoothness constant
L, the batch size beyond which larger batches stop helping is

    B*_c = 16 · σ_c² / g_c²

and the step size to use with batch size B is η_c = B / (2 · B*_c · L).

The optimiser estimates g_c and the variance of the *mini-batch* gradient,
v_c = σ_c² / B, with exponential moving averages (constant β) over steps:

    δ = g − m;   m ← m + (1 − β) · δ;   v ← β · (v + (1 − β) · δ²)

(m starts at the first gradient and v at zero). Substituting σ_c² = B · v_c the
batch size cancels:

    η_c = min(η_max, m_c² / (32 · L · v_c))        (η_max where v_c = 0)
    W_c ← W_c − η_c · g_c

The learning rate ``lr`` is the cap η_max, so schedulers act on it. The first
steps, before any noise is measured, are plain SGD at η_max.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> optimizer = NoiseAdaptiveSGD([w], lr=0.5)
    >>> w.grad = torch.tensor([1.0, -1.0])
    >>> optimizer.step()
    >>> w.tolist()
    [-0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer, group_of


class NoiseAdaptiveSGD(PerTensorOptimizer):
    """SGD with per-coordinate step B / (2·B*_c·L) (formulas in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η_max, the largest step size any coordinate takes.
        beta: β, the averaging constant of the gradient mean and variance.
        smoothness: L, the assumed smoothness (curvature) constant of the loss.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        beta: float = 0.99,
        smoothness: float = 1.0,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= beta < 1.0 or smoothness <= 0.0:
            raise ValueError("NoiseAdaptiveSGD needs lr > 0, beta in [0, 1) and smoothness > 0")
        super().__init__(params, {"lr": lr, "beta": beta, "smoothness": smoothness})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Update the running gradient mean and variance of ``p``, then step each coordinate by its η_c."""
        beta = group["beta"]
        if not state:
            state["mean"] = p.grad.clone()
            state["variance"] = torch.zeros_like(p)
        else:
            deviation = p.grad - state["mean"]
            state["mean"].add_((1.0 - beta) * deviation)
            state["variance"].add_((1.0 - beta) * deviation.pow(2)).mul_(beta)
        p.sub_(self.step_sizes(p, group) * p.grad)

    def step_sizes(self, p: Tensor, group: dict[str, Any] | None = None) -> Tensor:
        """η_c for every coordinate of ``p`` from the current estimates (η_max before any step)."""
        group = group or group_of(self, p)
        state = self.state[p]
        cap = torch.full_like(p, group["lr"])
        if not state:
            return cap
        variance = state["variance"]
        noisy = variance > 0
        adaptive = state["mean"].pow(2) / (32.0 * group["smoothness"] * torch.where(noisy, variance, 1.0))
        return torch.where(noisy, torch.minimum(adaptive, cap), cap)
