"""Loss functions by name: cross-entropy for classes, MSE for real targets."""

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


LOSSES: dict[str, LossFn] = {"cross_entropy": _cross_entropy, "mse": _mse}


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
    return name


def default_loss_name(dataset: "Dataset") -> str:
    """Cross-entropy for integer class targets, MSE for real-valued targets."""
    return "cross_entropy" if dataset.task == "classification" else "mse"
