"""Taking one optimiser step by hand: the schedule-free ``train()``/``eval()`` switch, and one measured step.

Used by the training loop and by everything that steps an optimiser outside
it (``probe slice --direction optimizer:NAME``, the own-step diagnostic), so
that the slicing and training packages share it without importing each other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from landscape_probe.losses import LossFn
from landscape_probe.params import Params


def optimizer_mode(optimizer: torch.optim.Optimizer, *, training: bool) -> None:
    """Call the optimiser's ``train()`` (before steps) or ``eval()`` (before evaluating or saving), if it has them.

    Schedule-free optimisers (Defazio et al., 2024) take gradients at one point y and
    evaluate another, the average x; these calls move the model's weights between them.
    Other optimisers have no such methods, and nothing happens.
    """
    switch = getattr(optimizer, "train" if training else "eval", None)
    if callable(switch):
        switch()


def take_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, x: Tensor, y: Tensor) -> Params:
    """One ``optimizer.step()`` of ``model`` (which it changes) on the loss of (x, y); returns W_after − W_before.

    A schedule-free optimiser (one with ``train()``/``eval()``) takes its gradient at its point y and
    the step returned is that of the weights it evaluates (x).
    """
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    optimizer_mode(optimizer, training=True)
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss_fn(model(x), y).backward()
    optimizer.step()
    optimizer_mode(optimizer, training=False)
    return {k: p.detach() - before[k] for k, p in model.named_parameters()}
