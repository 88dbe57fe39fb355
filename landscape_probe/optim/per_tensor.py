"""The shape every per-tensor optimiser here shares: one rule applied tensor by tensor.

As in optax, an optimiser is a small rule plus its state. Subclasses write
``update(p, group, state)``, which changes one parameter tensor in place from
its gradient ``p.grad``, its parameter group's settings and its own state dict;
this class runs the closure and the loop, so every rule is driven the same way
(and ``state_dict()`` and learning-rate schedulers work as for any
``torch.optim.Optimizer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def evaluate_closure(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """Run an optimiser's ``closure`` (which recomputes the loss) with gradients on, as ``step`` must."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def heavy_ball(state: dict[str, Any], direction: Tensor, momentum: float) -> Tensor:
    """``u ← momentum · u + direction`` in ``state["momentum_buffer"]`` (zeros at first); returns u.

    With ``momentum`` 0 it returns ``direction`` and keeps no buffer.
    """
    if momentum <= 0.0:
        return direction
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(direction)
    return state["momentum_buffer"].mul_(momentum).add_(direction)


def group_of(optimizer: torch.optim.Optimizer, p: Tensor) -> dict[str, Any]:
    """The parameter group that holds ``p``."""
    return next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))


class PerTensorOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step is the same rule applied to every tensor with a gradient."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Apply :meth:`update` to every parameter that has a gradient; returns the closure's loss."""
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, group, self.state[p])
        return loss

    def update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        """Change ``p`` in place from ``p.grad``; ``state`` starts empty and is kept between steps."""
        raise NotImplementedError
