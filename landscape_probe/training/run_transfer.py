"""A trained run sent from the rank that trained it to the others (``probe train`` under ``torchrun``).

A network cannot always be pickled (the output-selection hook is a closure,
a user's class may live in a script), so a run travels as its model's state
dict, with every tensor on the CPU (a rank's GPU may not exist on the rank
that receives it), and the network is rebuilt on arrival exactly as
:func:`~landscape_probe.training.loop.train_run` built it, then given the
trained values.

Example:
    >>> import torch
    >>> portable({"w": [torch.ones(1)]})["w"][0].device.type
    'cpu'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from landscape_probe.training.store import RunResult


def portable(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples) copied to the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(item) for item in value)
    return value


def packed(run: RunResult) -> RunResult:
    """The run with its model replaced by the model's state dict, and its state, on the CPU."""
    weights = portable(run.model.state_dict()) if run.model is not None else None
    return dataclasses.replace(run, model=weights, state=portable(run.state))


def unpacked(run: RunResult, output_key: str, device: str, factory: Any = None) -> RunResult:
    """A run from :func:`packed` with its network rebuilt on ``device`` and given its trained values."""
    from landscape_probe.devices import resolve_device
    from landscape_probe.models.outputs import attach_selection
    from landscape_probe.training.loop import init_model

    if run.model is None:
        return run
    model = init_model(run.model_args, run.seed, factory)
    attach_selection(model, output_key or None)
    model.load_state_dict(run.model)
    return dataclasses.replace(run, model=model.to(resolve_device(device)))
