"""AGD: automatic gradient descent (Bernstein, Mingard, Huang, Azizzadenesheli & Yue, 2023).

The layers are the parameter tensors with ndim ≥ 2, W_l of shape
d_l × d_{l−1} × k (output size × input channels × kernel positions; k = 1 for
a plain matrix); L is their number. A layer is normalised per kernel position:
for each position κ, ∇W_l[:, :, κ] is divided by its own Frobenius norm, and

    s_l = sqrt(d_l / (d_{l−1} · k))               (sqrt(output size / fan-in))
    G   = (1/L) Σ_l s_l · Σ_κ ||∇W_l[:, :, κ]||_F
    η   = log((1 + sqrt(1 + 4G)) / 2)
    W_l[:, :, κ] ← W_l[:, :, κ] − s · (η / L) · s_l · ∇W_l[:, :, κ] / ||∇W_l[:, :, κ]||_F

where s is the learning rate (1 = the paper's hyperparameter-free AGD; a
scheduler scales it). For a matrix (k = 1) this is the paper's Algorithm 1;
for a conv kernel it is the rule of the authors' code, which treats each
kernel position as its own d_l × d_{l−1} matrix.

Reference: Bernstein et al., "Automatic Gradient Descent: Deep Learning without
Hyperparameters" (arXiv:2304.05187), and github.com/jxbz/agd, ``agd.py``.
Deliberate differences from that code:

- Biases: the reference rejects 1-D tensors. Here a 1-D tensor of size d
  (bias, norm scale) is treated as a d × 1 layer fed by a constant input, so it
  takes the step s · (η / L) · sqrt(d) · g / ||g||, with η and L those of the
  weight layers; it does not enter G or L.
- Initialisation: the reference re-initialises the weights orthogonally (per
  kernel position) and scales them by s_l; this class keeps whatever
  initialisation the model has.
- Conv1d/Conv3d kernels are normalised per kernel position in the same way,
  with k their number of positions (the reference only scales 4-D kernels).
- A kernel position (or 1-D tensor) with zero gradient does not move.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(1, 1))
    >>> w.grad = torch.tensor([[2.0]])
    >>> AGD([w]).step()
    >>> round(w.item(), 4)   # G = 2, η = log 2
    -0.6931
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import evaluate_closure


def fan_ratio(p: Tensor) -> float:
    """s_l = sqrt(d_l / d_{l−1}) for a weight tensor: sqrt(output size / fan-in); sqrt(d) for a 1-D tensor."""
    if p.ndim >= 2:
        return math.sqrt(p.shape[0] / p[0].numel())
    return math.sqrt(p.numel())


def position_norms(grad: Tensor) -> Tensor:
    """The Frobenius norm of each kernel position's out × in slice, shaped to broadcast against ``grad``
    (one value for a matrix); for a 1-D tensor, its norm."""
    if grad.ndim >= 2:
        return torch.linalg.vector_norm(grad, dim=(0, 1), keepdim=True)
    return torch.linalg.vector_norm(grad)


class AGD(torch.optim.Optimizer):
    """Automatic gradient descent (formulas in the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: s, a multiplier on the automatic step size η (default 1).

    G is summed on the parameters' device, in float64, and read once a step (not once a layer); η is then
    taken with ``math.log``, as before (``torch.log`` differs from it in the last bit now and then).

    Attributes:
        last_eta: η of the most recent step, before the multiplier s.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1.0) -> None:
        if lr <= 0.0:
            raise ValueError(f"AGD needs a positive learning-rate multiplier, not {lr}")
        super().__init__(params, {"lr": lr})
        self.last_eta = 0.0

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Take one AGD step on every parameter that has a gradient."""
        loss = evaluate_closure(closure)
        stepping = [(p, group["lr"]) for group in self.param_groups for p in group["params"] if p.grad is not None]
        layers = [p for p, _ in stepping if p.ndim >= 2]
        if not layers:
            return loss
        depth = len(layers)
        gain = float(sum(fan_ratio(p) * position_norms(p.grad).sum().to(layers[0].device, torch.float64)
                         for p in layers) / depth)
        eta = math.log((1.0 + math.sqrt(1.0 + 4.0 * gain)) / 2.0)
        self.last_eta = eta
        for p, lr in stepping:
            norms = position_norms(p.grad)
            unit = torch.where(norms > 0, p.grad / torch.where(norms > 0, norms, 1.0), 0.0)
            p.sub_((lr * eta / depth * fan_ratio(p)) * unit)
        return loss
