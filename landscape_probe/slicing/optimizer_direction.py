"""The direction ``optimizer:NAME[:lr]``: the update an optimiser would take from W, and where it sits.

The step is the optimiser's own: a copy of the model, the optimiser built from
the table (:func:`landscape_probe.optim.build_optimizer`) on it, one
``step()`` on the gradient of the mean loss over the whole probe set (one
forward pass, in ``eval()`` mode, in the slice's device and dtype), and

    d = W_after − W_before,

so that W + d is the network after that step (for a schedule-free optimiser,
whose ``train()``/``eval()`` are called around the step, the gradient is taken
at its point y and d is the step of the average x that it evaluates). From fresh state this is the
optimiser's first step; for a checkpoint written by ``probe train`` whose run
trained that same optimiser, its saved state (moments, momentum buffers,
step counts, and the learning rate the schedule had reached) is loaded first,
and d is the step it would take next. The slice uses no scaling by default, so
t = 1 is the actual step. ``optimizer:sgd:η`` gives d = −η·g.

Where the step sits against the slice's trust region is :func:`step_over_breakdown`:
the scale of the actual step over the measured breakdown scale (where the
relative gradient change reaches 1). Above 1, the optimiser steps past it.

Example:
    >>> parse_optimizer_direction("optimizer:adam:0.001"), parse_optimizer_direction("optimizer:sgd")
    (('adam', 0.001), ('sgd', None))
    >>> parse_optimizer_direction("optimizer:torch.optim:SGD:0.5")
    ('torch.optim:SGD', 0.5)
    >>> step_over_breakdown(0.25, "none")
    4.0
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from torch import Tensor, nn

PREFIX = "optimizer"


def parse_optimizer_direction(direction: str) -> tuple[str, float | None]:
    """``optimizer:NAME[:lr]`` as (the optimiser's table key or ``module:Class``, the learning rate or None).

    Raises:
        ProbeError: for a missing or unknown name, or a learning rate that is not a positive number.
    """
    from landscape_probe.optim import OPTIMIZER_NAMES, optimizer_class, optimizer_key

    rest = direction.partition(":")[2].strip()
    head, sep, tail = rest.rpartition(":")
    name, lr = rest, None
    if sep:
        try:
            name, lr = head, float(tail)
        except ValueError:
            if optimizer_key(head) in OPTIMIZER_NAMES:
                raise ProbeError(f"Cannot read the learning rate '{tail}' in --direction {direction}; "
                                 "write optimizer:NAME:RATE, e.g. optimizer:sgd:0.1.") from None
    if not name:
        raise ProbeError("An optimizer direction needs a name: write --direction optimizer:NAME[:lr], "
                         "e.g. optimizer:adam or optimizer:sgd:0.1.")
    key = optimizer_key(name)
    if ":" in key:
        optimizer_class(key)
    elif key not in OPTIMIZER_NAMES:
        raise ProbeError(f"Unknown optimizer '{name}' in --direction {direction}; use one of: "
                         f"{', '.join(OPTIMIZER_NAMES)}, or module:Class.")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ProbeError(f"The learning rate in --direction {direction} must be a positive number, not {tail}.")
    return key, lr


def stepped_model(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_name: str,
    direction: str,
    *,
    device: Any,
    dtype: Any,
    saved: Any | None = None,
) -> tuple[nn.Module, str]:
    """The network after the optimiser's step from W, and one phrase saying which step it is.

    Args:
        model: the network at W (not changed).
        x, y: the probe set.
        loss_name: the slice's loss.
        direction: ``optimizer:NAME[:lr]``.
        device, dtype: the slice's, so that W_after − W_before is formed in them.
        saved: a loaded checkpoint (:class:`~landscape_probe.checkpoints.load.LoadedCheckpoint`) or None:
            its training settings (momentum, weight decay, optimiser keywords) are used, and its
            optimiser state when its run trained this optimiser.

    Raises:
        ProbeError: for a bad direction, an optimiser that cannot be built or stepped, or a step of zero.
    """
    import torch

    from landscape_probe.losses import loss_function
    from landscape_probe.models.modes import eval_mode, placed
    from landscape_probe.optim import build_optimizer, optimizer_key
    from landscape_probe.optim.stepping import take_step

    name, lr = parse_optimizer_direction(direction)
    config = (saved.config if saved is not None else None) or {}
    run = (saved.run if saved is not None else None) or {}
    state = saved.optimizer if saved is not None and optimizer_key(str(run.get("optimizer", ""))) == name else None
    after = eval_mode(placed(copy.deepcopy(model), device, dtype))
    optimizer = build_optimizer(
        name, after, lr if lr is not None else run.get("lr") if state is not None else None,
        momentum=float(config.get("momentum", 0.9)), weight_decay=float(config.get("weight_decay", 0.0)),
        optimizer_kwargs=config.get("optimizer_kwargs") if ":" in name else None,
    )
    if state is not None:
        try:
            optimizer.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - a state that does not fit this model
            raise ProbeError(f"The {name} state saved in the checkpoint does not fit its model: {err}.") from None
        if lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr
    x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
    y = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
    try:  # a schedule-free optimiser takes its gradient at y, not at W = x (take_step handles it)
        step = take_step(after, optimizer, loss_function(loss_name), x, y)
    except Exception as err:  # noqa: BLE001 - a user's optimiser failing on this model
        raise ProbeError(f"The {name} optimizer failed to take its step: {err}.") from None
    if not any(bool(torch.any(delta != 0)) for delta in step.values()):
        raise ProbeError(f"The {name} step from W is zero (a learning rate of 0, a zero gradient, or an optimiser "
                         "whose first step only gathers statistics, like SOAP: slice a checkpoint of a run that "
                         "trained it), so there is nothing to slice along.")
    rate = optimizer.param_groups[0]["lr"]
    which = f"the step it would take next from the state saved at step {saved.step}" if state is not None else \
        "its first step from fresh state"
    return after.requires_grad_(False), f"{name}, lr {rate:g}: {which}"


def step_over_breakdown(breakdown_scale: float, scaling: str) -> float:
    """Where the optimiser's actual step sits relative to the measured breakdown scale: 1 / t_breakdown.

    The actual step is t = 1 only with no scaling (``none``, the default of this direction);
    any other scaling changes the step's length or shape, and the ratio is NaN. NaN too when
    the relative gradient change never reaches 1 at the scales measured.
    """
    if scaling != "none" or not (math.isfinite(breakdown_scale) and breakdown_scale > 0):
        return math.nan
    return 1.0 / breakdown_scale
