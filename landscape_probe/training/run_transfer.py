"""A trained run sent from the rank that trained it to the others (``probe train`` under ``torchrun``).

A network cannot always be pickled (the output-selection hook is a closure,
a user's class may live in a script), so a run travels as its model's state
dict, with every tensor on the CPU (a rank's GPU may not exist on the rank
that receives it; :func:`~landscape_probe.devices.portable`), and the network is rebuilt on arrival exactly as
:func:`~landscape_probe.training.loop.train_run` built it, then given the
trained values.

Example:
    >>> import torch
    >>> run = RunResult("sgd", 0.1, 2, 0, {}, [], [], {}, model=torch.nn.Linear(1, 1))
    >>> sorted(packed(run).model), packed(run).model["weight"].device.type
    (['bias', 'weight'], 'cpu')
"""

from __future__ import annotations

import dataclasses
from typing import Any

from landscape_probe.devices import portable
from landscape_probe.training.store import RunResult


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
