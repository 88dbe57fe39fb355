"""Train/eval mode of a model, for every kind of module the tool loads.

``torch.export`` programs (``ExportedProgram.module()``) refuse ``.eval()``
with ``NotImplementedError``: their train/eval behaviour was fixed at export
time. :func:`eval_mode` then only sets every submodule's ``training`` flag, so
that code reading it (and ``model.training``) sees eval mode.
:func:`evaluating` does the same for one block and then gives every submodule
back exactly the mode it had (a frozen batch norm inside a training model
stays frozen).

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    >>> eval_mode(model) is model, model.training, model[1].training
    (True, False, False)
    >>> _ = model.train()
    >>> with evaluating(model):
    ...     model[1].training
    False
    >>> model[1].training
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn


def eval_mode(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and return it, also for ``torch.export`` modules that refuse ``.eval()``."""
    try:
        return model.eval()
    except NotImplementedError:
        for module in model.modules():
            module.training = False
        return model


def placed(model: nn.Module, device: Any, dtype: Any) -> nn.Module:
    """``model.to(device=device, dtype=dtype)``, with a graph module's own device arguments moved too.

    A ``torch.export`` program's module (or any ``torch.fx`` graph module) writes
    the device it was exported on into the graph as a fixed argument of the
    tensors it makes (``arange`` for positions, ``zeros``, ``full``); ``.to`` moves
    the weights but not those, which then meet the weights on another device and
    are refused. Those arguments are set to ``device`` here (the graph recompiled);
    any other module is only moved.
    """
    import torch

    model = model.to(device=device, dtype=dtype)
    target = torch.device(device)
    for module in model.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        moved = [node for node in module.graph.nodes
                 if node.kwargs.get("device") is not None and torch.device(node.kwargs["device"]) != target]
        for node in moved:
            node.update_kwarg("device", target)
        if moved:
            module.recompile()
    return model


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block (as :func:`eval_mode`), then each submodule's own previous mode again."""
    modes = [(module, module.training) for module in model.modules()]
    eval_mode(model)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
