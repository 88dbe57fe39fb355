"""How far the optimiser's own next step reaches into its trust region, during training.

At a diagnostic step, on the fixed diagnostic batch: a copy of the model and of
the optimiser, made together (:func:`copy_with_optimizer`), takes the step it
would take next, ΔW = W_after − W_before (:func:`~landscape_probe.optim.stepping.take_step`, shared with
``probe slice --direction optimizer:NAME``). The relative gradient change along it,

    r(t) = ||g(W + t·ΔW) − g(W)|| / ||g(W)||,

is measured at t = 0.25, 0.5, 1, 2, … (``SCALES``, up to 1024), stopping at the
first t where r ≥ 1; the breakdown scale t* is where r first reaches
1 (interpolated linearly in log r against log t between the two scales that
bracket it), and the recorded ratio is 1 / t*: the actual step (t = 1) over
the breakdown scale, as ``probe slice`` reports it. Above 1 the optimiser
steps past the region where its gradient is still informative. When r
reaches 1 already at the smallest scale the ratio is recorded as
1 / min(SCALES) = 4 (a lower bound), and when it never does, NaN (the step stays
inside up to 1024 times its length).

Example:
    >>> round(breakdown_ratio([0.25, 0.5, 1.0, 2.0], [0.1, 0.3, 0.9, 2.7]), 4)
    0.9357
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape_probe.losses import LossFn
from landscape_probe.models.modes import evaluating
from landscape_probe.optim.stepping import take_step
from landscape_probe.params import Params

SCALES = tuple(0.25 * 2.0**k for k in range(13))
"""0.25, 0.5, 1, 2, ..., 1024: measured in turn until the change reaches 1."""


def copy_with_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Deep copies of ``model`` and ``optimizer`` made together: the copy steps the copied parameters.

    Every attribute of the optimiser is copied, not only what ``torch.optim.Optimizer`` pickles (its
    defaults, state and groups), so one that holds more — K-FAC its layers and captured statistics,
    Muon + AdamW its two inner optimisers — copies whole. Both copies share one deep-copy memo, in
    which the optimiser's copy is entered before the model is copied: a parameter is copied once
    for both, and a hook the optimiser put on the model (K-FAC's, a bound method of the optimiser)
    is copied onto the copied model bound to the copied optimiser. An attribute that hides one of
    the class's methods is left out: a learning-rate scheduler wraps ``step`` so, in a closure that
    refers to the original optimiser, and the copy must step itself.
    """
    cls = type(optimizer)
    twin = cls.__new__(cls)
    memo: dict[int, Any] = {id(optimizer): twin}
    copied = copy.deepcopy(model, memo)
    own = {k: v for k, v in optimizer.__dict__.items() if not callable(getattr(cls, k, None))}
    twin.__dict__.update(copy.deepcopy(own, memo))
    return copied, twin


def own_step_over_breakdown(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, x: Tensor,
                            y: Tensor) -> float:
    """The ratio of the module docstring for ``optimizer``'s next step; NaN when it cannot be copied or measured.

    The model and optimiser are copied by :func:`copy_with_optimizer`; a user's optimiser that holds
    something that cannot be deep-copied gives NaN.
    """
    with evaluating(model):
        try:
            copied, twin = copy_with_optimizer(model, optimizer)
        except Exception:  # noqa: BLE001 - an optimiser holding something that cannot be copied
            return math.nan
        with evaluating(copied):
            step = take_step(copied, twin, loss_fn, x, y)
        parameters = {k: v.detach() for k, v in model.named_parameters()}
        buffers = {k: v.detach() for k, v in model.named_buffers()}

        def gradient(weights: Params) -> Params:
            leaves = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
            with torch.enable_grad():
                loss = loss_fn(functional_call(model, {**buffers, **leaves}, (x,)), y)
                parts = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(leaves.items(), parts)}

        at_w = gradient(parameters)
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in at_w.values()))
        if not norm > 0:
            return math.nan
        changes: list[float] = []
        for t in SCALES:
            moved = gradient({k: v + t * step[k] for k, v in parameters.items()})
            changes.append(math.sqrt(sum(float(((moved[k] - at_w[k]).double() ** 2).sum()) for k in at_w)) / norm)
            if not changes[-1] < 1.0:
                break
    return breakdown_ratio(SCALES[: len(changes)], changes)


def breakdown_ratio(scales: Sequence[float], changes: Sequence[float]) -> float:
    """1 / t*, t* where ``changes`` (at increasing ``scales``) first reach 1, interpolated in log-log.

    1 / scales[0] when the first change already reaches 1; NaN when none does (or a change is not finite first).
    """
    for i, (t, r) in enumerate(zip(scales, changes)):
        if not math.isfinite(r):
            return math.nan
        if r >= 1.0:
            if i == 0:
                return 1.0 / t
            t0, r0 = scales[i - 1], changes[i - 1]
            if r0 <= 0:
                return 1.0 / t
            fraction = (0.0 - math.log(r0)) / (math.log(r) - math.log(r0))
            return 1.0 / math.exp(math.log(t0) + fraction * (math.log(t) - math.log(t0)))
    return math.nan
