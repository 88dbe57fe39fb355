"""Train/eval mode of a model, for every kind of module the tool loads.

``torch.export`` programs (``ExportedProgram.module()``) refuse ``.eval()``
with ``NotImplementedError``: their train/eval behaviour was fixed at export
time. :func:`eval_mode` then only sets every submodule's ``training`` flag, so
that code reading it (and ``model.training``) sees eval mode.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    >>> eval_mode(model) is model, model.training, model[1].training
    (True, False, False)
"""

from __future__ import annotations

from torch import nn


def eval_mode(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and return it, also for ``torch.export`` modules that refuse ``.eval()``."""
    try:
        return model.eval()
    except NotImplementedError:
        for module in model.modules():
            module.training = False
        return model
