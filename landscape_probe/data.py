"""Data sets for probing and training: built-in ones and user files.

Nothing is downloaded: ``digits`` ships with scikit-learn, ``mnist1d`` is
generated offline, ``synthetic`` is generated from a seed, and users can pass
``.npz`` / ``.pt`` files.

Example:
    >>> data = load_dataset("digits", seed=0)
    >>> data.x_train.shape[1], data.num_outputs, data.task
    (64, 10, 'classification')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from landscape_probe.errors import ProbeError

BUILTIN = ("digits", "mnist1d", "synthetic")


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as tensors.

    Attributes:
        name: the name or file path it was loaded from.
        x_train, y_train, x_test, y_test: inputs (float32) and targets
            (int64 class indices for classification, float32 for regression).
        task: ``classification`` or ``regression``.
        num_classes: number of classes, or None for regression.
        spec: the JSON-able recipe that reloads exactly this data set
            (stored in checkpoints as ``data``), e.g. ``{"name": "digits", "seed": 0}``.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    task: str
    num_classes: int | None
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Network outputs needed: classes, or regression targets."""
        if self.task == "classification":
            return int(self.num_classes)
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


def load_dataset(name: str, seed: int = 0, **options: Any) -> Dataset:
    """Load a built-in data set by name, or a user ``.npz`` / ``.pt`` file by path.

    Raises:
        ProbeError: for an unknown name or an unreadable file.
    """
    if name == "digits":
        return _digits(seed, **options)
    raise ProbeError(f"Unknown data set '{name}'; use one of {', '.join(BUILTIN)} or a .npz/.pt file.")


def load_dataset_spec(spec: dict[str, Any]) -> Dataset:
    """Reload a data set from the ``spec`` recorded in a checkpoint."""
    options = dict(spec)
    name = options.pop("name")
    return load_dataset(name, **options)


def _digits(seed: int, test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(
        name="digits",
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        task="classification",
        num_classes=10,
        spec={"name": "digits", "seed": seed, "test_fraction": test_fraction},
    )
