"""Nero, the neuronal rotator (Liu, Bernstein, Meister & Yue, ICML 2021, Algorithm 1).

A *neuron* is one output row of a weight tensor with ndim ≥ 2 and fan-in > 1,
flattened over its inputs: w ∈ Rⁿ with gradient g_w. Each step, with step size
η and averaging constant β, at step t:

    v_w ← β · v_w + (1 − β) · ||g_w||²                    (per neuron)
    w   ← w − η · ||w|| / sqrt(v_w / (1 − βᵗ)) · g_w
    w   ← w − mean(w);   w ← r · w / ||w||                 (project back)

so every neuron turns by an angle of about η. The paper constrains neurons to
the unit sphere; here r is the neuron's norm at the first step after removing
its mean, so the model keeps its own initial scale (for LeCun-initialised
layers r ≈ 1). Neurons whose r is zero stay zero.

Every other tensor (biases, norm scales) is updated entry by entry, as the
paper's biases, without projection:

    v_b ← β · v_b + (1 − β) · g_b²;   b ← b − η · σ_b / sqrt(v_b / (1 − βᵗ)) · g_b

with σ_b = mean |b| at the first step, or ``bias_scale`` (default 0.01) when
that is zero, e.g. for zero-initialised biases. A weight with fan-in 1 (shape
d × 1 × …) is a stack of one-entry neurons: its per-neuron second moment is the
per-entry g², and σ = mean of the neuron norms = mean |w|, so it takes this
same entry-wise step.

Reference: Liu et al., "Learning by Turning: Neural Architecture Aware
Optimisation" (ICML 2021), and github.com/jxbz/nero, ``nero.py`` (σ as above,
0.01 when zero). Deliberate differences from that code:

- Its constructor rescales every neuron to unit norm after removing its mean
  (and uses σ = mean neuron norm = 1 as the step scale); here each neuron keeps
  its own norm r and steps by η · ||w||. On weights already centred at unit
  norm the two agree exactly.
- For a fan-in-1 weight its projection would centre each one-entry neuron to 0
  and divide 0 by 0 (NaN); here such neurons are not projected.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([[1.0, 0.0, -1.0]]))
    >>> w.grad = torch.tensor([[0.0, 1.0, 0.0]])
    >>> Nero([w], lr=0.1).step()
    >>> [round(x, 3) for x in w.tolist()[0]]
    [1.044, -0.094, -0.95]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import PerTensorOptimizer


def has_neurons(p: Tensor) -> bool:
    """Whether Nero treats ``p`` as rows of neurons (ndim ≥ 2 and fan-in > 1)."""
    return p.ndim >= 2 and p[0].numel() > 1


def _centred_rows(rows: Tensor) -> Tensor:
    return rows - rows.mean(dim=1, keepdim=True)


class Nero(PerTensorOptimizer):
    """Nero (formulas in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: η, the per-neuron turning angle (0.01 is the paper's default).
        beta: β, the averaging constant of the squared gradient norms.
        bias_scale: σ_b for tensors without neurons whose initial mean |b| is zero (0.01 as the reference).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        beta: float = 0.999,
        bias_scale: float = 0.01,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= beta < 1.0 or bias_scale <= 0.0:
            raise ValueError("Nero needs lr > 0, beta in [0, 1) and bias_scale > 0")
        super().__init__(params, {"lr": lr, "beta": beta, "bias_scale": bias_scale})

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """One Nero step on ``p`` (see the module docstring)."""
        lr, beta = group["lr"], group["beta"]
        neurons = has_neurons(p)
        rows, grad_rows = (p.view(p.shape[0], -1), p.grad.reshape(p.shape[0], -1)) if neurons else (p, p.grad)
        if not state:
            state["step"] = 0
            if neurons:
                state["target_norm"] = torch.linalg.vector_norm(_centred_rows(rows), dim=1)
                state["exp_avg_sq"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
            else:
                mean_size = float(p.abs().mean()) if p.numel() else 0.0
                state["scale"] = mean_size if mean_size > 0.0 else group["bias_scale"]
                state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        squared = grad_rows.pow(2).sum(dim=1) if neurons else grad_rows.pow(2)
        state["exp_avg_sq"].mul_(beta).add_((1.0 - beta) * squared)
        denominator = (state["exp_avg_sq"] / (1.0 - beta ** state["step"])).sqrt()
        inverse = torch.where(denominator > 0, 1.0 / torch.where(denominator > 0, denominator, 1.0), 0.0)
        if not neurons:
            p.sub_(lr * state["scale"] * inverse * p.grad)
            return
        step_size = lr * torch.linalg.vector_norm(rows, dim=1) * inverse
        rows.sub_(step_size[:, None] * grad_rows)
        centred = _centred_rows(rows)
        norms = torch.linalg.vector_norm(centred, dim=1)
        safe = torch.where(norms > 0, norms, 1.0)
        rows.copy_(centred * (state["target_norm"] / safe)[:, None])


