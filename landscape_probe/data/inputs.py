"""What a Python user may pass as ``data``, turned into one :class:`~landscape_probe.data.datasets.Dataset`.

``lp.slice``, ``lp.train`` and the other API calls take their data in any of
these forms:

- a built-in name or spec (``"digits"``, ``"synthetic:task=regression"``) or a
  ``.npz`` / ``.pt`` file path: loaded as the CLI's ``--data`` is;
- our own :class:`~landscape_probe.data.datasets.Dataset`: used as it is;
- tensors or numpy arrays: ``(x, y)``, or ``(x_train, y_train, x_test, y_test)``;
- a ``torch.utils.data.Dataset`` or ``DataLoader`` yielding ``(x, y)`` pairs
  (or batches): every example is read once, in order.

Given only ``(x, y)``, there is no held-out split: the test split is the same
examples (the data set's ``name`` says so), which suits probing and leaves
test accuracy equal to training accuracy in training.

Example:
    >>> import torch
    >>> data = as_dataset((torch.randn(10, 3), torch.arange(10) % 2))
    >>> data.task, data.num_classes, len(data.x_train), data.name
    ('classification', 2, 10, 'tensors (test split = training examples)')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape_probe.data.datasets import Dataset, _from_arrays, load_dataset, parse_data_spec
from landscape_probe.errors import ProbeError

__all__ = ["as_dataset", "dataset_for"]


def as_dataset(data: Any, *, seed: int = 0) -> Dataset:
    """Turn any accepted form of ``data`` into a :class:`Dataset`.

    Args:
        data: a name, spec or file path; a Dataset; a 2- or 4-tuple of tensors
            or arrays; a ``torch.utils.data.Dataset`` or ``DataLoader``.
        seed: for names and files: the split and, for generated sets, the data.

    Raises:
        ProbeError: for anything else, or arrays that do not form a data set.
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        name, options = parse_data_spec(str(data))
        return load_dataset(name, seed=seed, **options)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        parts = [_tensor(part) for part in data]
        if len(parts) == 2:
            return _from_arrays("tensors (test split = training examples)", *parts, *parts, spec={})
        return _from_arrays("tensors", *parts, spec={})
    if isinstance(data, torch.utils.data.DataLoader):
        return as_dataset(_concatenate(list(data)), seed=seed)
    if isinstance(data, torch.utils.data.Dataset):
        return as_dataset(_concatenate([_batched(data[i]) for i in range(len(data))]), seed=seed)
    raise ProbeError(
        f"Cannot use a {type(data).__name__} as data; pass a name such as 'digits', a .npz/.pt path, "
        "an (x, y) pair of tensors, a torch Dataset or a DataLoader."
    )


def dataset_for(data: Any, loaded: Any) -> Dataset:
    """The data set a command measures on: ``data`` (:func:`as_dataset`), else the one ``loaded`` records.

    For a Hugging Face folder (its recorded data names the ``model`` folder) a token
    probe set given as ``text:FILE``, ``jsonl:FILE`` or ``tokens:...`` is made for that
    model, with its tokenizer and objective (:mod:`landscape_probe.data.text`).

    Raises:
        ProbeError: when there is no data, or they cannot be read.
    """
    from landscape_probe.data.datasets import load_dataset_spec
    from landscape_probe.data.text import SPECS

    recorded = loaded.data if loaded is not None else None
    if data is None:
        if recorded:
            return load_dataset_spec(recorded)
        where = f"'{loaded.path}' does not record its data set" if loaded else "A model given as a module has no data set"
        raise ProbeError(f"{where}; name one with --data (data= in Python), e.g. digits.")
    if isinstance(data, (str, Path)) and recorded and "model" in recorded:
        name, options = parse_data_spec(str(data))
        if name in SPECS:
            return load_dataset(name, **{"model": recorded["model"], **options})
    return as_dataset(data)


def _tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ProbeError(f"Data arrays must be tensors or numpy arrays, not {type(value).__name__}.")


def _batched(item: Any) -> tuple[Tensor, Tensor]:
    """One ``(x, y)`` example as a batch of one."""
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise ProbeError("Each item of a torch Dataset must be an (x, y) pair.")
    x, y = (torch.as_tensor(part) for part in item)
    return x.unsqueeze(0), y.reshape(1, *y.shape)


def _concatenate(batches: list[Any]) -> tuple[Tensor, Tensor]:
    if not batches:
        raise ProbeError("The data yields no examples.")
    if not all(isinstance(batch, (tuple, list)) and len(batch) == 2 for batch in batches):
        raise ProbeError("Each batch of a DataLoader must be an (x, y) pair.")
    return torch.cat([_tensor(x) for x, _ in batches]), torch.cat([_tensor(y) for _, y in batches])
