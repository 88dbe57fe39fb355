"""Loss functions by name: cross-entropy for classes, MSE for real targets, token cross-entropy for language models.

``token_cross_entropy`` takes logits of shape (N, L, V) and one target id per
position (N, L), −100 where a position has none, and averages over the positions
with a target: a causal LM's next-token loss with shifted targets, a masked LM's
loss on its masked tokens (:mod:`landscape_probe.data.text`), as ``transformers``
computes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.data.datasets import Dataset

LossFn = Callable[[Tensor, Tensor], Tensor]


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.mse_loss(outputs, targets.reshape(outputs.shape).to(outputs.dtype))


def _cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(outputs, targets)


def _token_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=-100)


LOSSES: dict[str, LossFn] = {"cross_entropy": _cross_entropy, "mse": _mse, "token_cross_entropy": _token_cross_entropy}
TASK_LOSSES = {"classification": "cross_entropy", "regression": "mse", "tokens": "token_cross_entropy"}


def classifies(targets: Tensor) -> bool:
    """Whether targets are one class index per example, so that accuracy and KL divergence are measured."""
    return not targets.is_floating_point() and targets.ndim == 1


def loss_function(name: str) -> LossFn:
    """The mean-reduced loss ``loss(outputs, targets)`` called ``name``."""
    if name not in LOSSES:
        raise ProbeError(f"Unknown loss '{name}'; use one of {', '.join(LOSSES)}.")
    return LOSSES[name]


def loss_for(dataset: "Dataset", requested: str | None) -> str:
    """The loss to use on ``dataset``: ``requested`` if it fits the targets, else the data set's default.

    Raises:
        ProbeError: for an unknown loss, MSE on class indices, or cross-entropy on real-valued targets.
    """
    name = requested or default_loss_name(dataset)
    loss_function(name)
    if name == "mse" and dataset.task == "classification":
        raise ProbeError("--loss mse needs real-valued targets, but these are class indices; "
                         "use cross_entropy, or give float targets (e.g. one-hot rows) in your own data file.")
    if name == "cross_entropy" and dataset.task == "regression":
        raise ProbeError("--loss cross_entropy needs integer class indices as targets, but these are real numbers; "
                         "use mse.")
    if (name == "token_cross_entropy") != (dataset.task == "tokens"):
        raise ProbeError(f"--loss {name} does not fit the {dataset.task} targets of '{dataset.name}'; "
                         f"use {TASK_LOSSES[dataset.task]}.")
    return name


def default_loss_name(dataset: "Dataset") -> str:
    """Cross-entropy for integer class targets, MSE for real-valued targets, token cross-entropy for token targets."""
    return TASK_LOSSES[dataset.task]
