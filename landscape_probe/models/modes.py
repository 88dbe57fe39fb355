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

from torch import nn


def eval_mode(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and return it, also for ``torch.export`` modules that refuse ``.eval()``."""
    try:
        return model.eval()
    except NotImplementedError:
        for module in model.modules():
            module.training = False
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
