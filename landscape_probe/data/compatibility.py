"""Does a model fit a data set? Run it on two examples and say clearly when not.

Example:
    >>> from landscape_probe.data.datasets import load_dataset
    >>> from landscape_probe.models.zoo import MLP
    >>> check_model_accepts(MLP(64, 10), load_dataset("digits"))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.modes import evaluating

if TYPE_CHECKING:
    from landscape_probe.data.datasets import Dataset


def check_model_accepts(model: nn.Module, dataset: Dataset) -> None:
    """Run ``model`` on two training examples and check that the output size fits the data.

    The model is run in eval mode without gradients, and left in the mode it
    was in (``torch.export`` modules, which cannot switch modes, run as they are).

    Floating inputs are cast to the model's dtype; integer inputs (token ids)
    are given as they are, as every command does.

    Raises:
        ProbeError: saying what was tried (two examples of this shape and
            dtype), the model's own complaint, and what its first layer takes,
            when the model cannot take the examples; or the output count, when
            it gives the wrong number of outputs.
    """
    reference = next(model.parameters(), None)
    x = dataset.x_train[:2]
    if reference is not None:
        x = x.to(device=reference.device, dtype=reference.dtype if x.is_floating_point() else x.dtype)
    try:
        with torch.no_grad(), evaluating(model):
            outputs = model(x)
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ""
        if not x.is_floating_point() and not _starts_with_embedding(model):
            hint = "; integer inputs are given to the model as they are, so store them as floats if it takes features"
        raise ProbeError(
            f"The model fails on two examples of '{dataset.name}' (shape {dataset.input_shape}, {str(x.dtype).removeprefix('torch.')}) "
            f"with \"{first_line.rstrip('.')}\"; it takes {_expected_input(model)}{hint}."
        ) from None
    if dataset.task == "tokens":
        expected = (*x.shape, dataset.num_outputs)
        if not isinstance(outputs, Tensor) or tuple(outputs.shape) != expected:
            shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
            raise ProbeError(f"The model gives outputs of shape {shape} on two sequences of '{dataset.name}', but "
                             f"its token targets need logits of shape {expected}.")
        return
    given = outputs[0].numel() if isinstance(outputs, Tensor) and outputs.ndim >= 1 else None
    if given != dataset.num_outputs:
        raise ProbeError(
            f"The model gives {given} outputs per example, but the {dataset.task} data set "
            f"'{dataset.name}' needs {dataset.num_outputs}."
        )


def _starts_with_embedding(model: nn.Module) -> bool:
    first = next((m for m in model.modules() if isinstance(m, (nn.Embedding, nn.Linear, nn.modules.conv._ConvNd))), None)
    return isinstance(first, nn.Embedding)


def _expected_input(model: nn.Module) -> str:
    """What the model's first layer takes, in words."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, (list, tuple)):
        return f"examples of shape {tuple(shape)} or {math.prod(shape)} flat features"
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return f"integer ids below {module.num_embeddings}"
        if isinstance(module, nn.Linear):
            return f"{module.in_features} input features"
        if isinstance(module, nn.modules.conv._ConvNd):
            return f"{module.in_channels} input channels"
    return "a different input"
