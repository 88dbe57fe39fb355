"""Writing and reading results files: atomic HDF5, provenance, self-describing datasets.

Every results file has root attributes saying what it is (``kind``: ``slice``
or ``train``) and how it was made (see :func:`provenance`), and every dataset
carries ``description`` and ``units`` attributes. Files are written to a
temporary name in the same folder and renamed when complete, so a crash or
Ctrl-C never leaves a half-written file under the final name. The layout of
each kind is declared once (``slicing/result.py``, ``training/records.py``)
and is documented in ``docs/hdf5-format.md``.

Example:
    >>> attrs = provenance(command_line="probe slice m.pt", device="cpu", seed=0)  # doctest: +SKIP
    >>> with atomic_h5("out.h5", kind="slice", attrs=attrs, overwrite=False) as h5:  # doctest: +SKIP
    ...     write_dataset(h5, "scales", [0.0, 0.1], description="perturbation scale t", units="1")
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape_probe import __version__
from landscape_probe.atomic import atomic_path
from landscape_probe.errors import ProbeError

SCHEMA_VERSION = 1


def check_writable(path: Path | str, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists (without ``overwrite``) or cannot be written.

    Raises:
        ProbeError: if ``path`` exists and ``overwrite`` is False, is a folder,
            or its folder is missing or not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ProbeError(f"Output '{path}' is a folder; give a file name such as {path / 'results.h5'}.")
    if path.exists() and not overwrite:
        raise ProbeError(f"Output '{path}' already exists; pass --overwrite (overwrite=True in Python) to replace it.")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise ProbeError(f"Cannot write '{path}': '{folder}' is a file, not a folder.")
    if not folder.is_dir():
        raise ProbeError(f"Cannot write '{path}': the folder '{folder}' does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProbeError(f"Cannot write '{path}': the folder '{folder}' is not writable.")


@contextlib.contextmanager
def atomic_h5(path: Path | str, *, kind: str, attrs: dict[str, Any], overwrite: bool) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears under ``path`` only once the block succeeds.

    Args:
        path: the final file name.
        kind: the root attribute ``kind`` (``slice`` or ``train``).
        attrs: further root attributes, usually :func:`provenance`.
        overwrite: whether an existing file may be replaced.

    Yields:
        The open file (a temporary one in the same folder).

    Raises:
        ProbeError: as :func:`check_writable`.
    """
    check_writable(path, overwrite)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["kind"] = kind
            for key, value in attrs.items():
                h5.attrs[key] = _attr_value(value)
            yield h5


def provenance(
    *,
    command_line: str,
    device: str,
    seed: int | None,
    checkpoint: Path | str | None = None,
    checkpoint_sha256: str = "",
) -> dict[str, Any]:
    """The root attributes that say how a results file was made.

    The checkpoint's hash is the one its loader computed while reading it
    (``LoadedCheckpoint.sha256``), so the file is read once.

    Returns:
        ``schema_version``, ``tool_version``, ``command_line``, ``created`` (ISO
        8601, UTC), ``torch_version``, ``device``, ``seed`` (-1 when none),
        ``checkpoint_path`` (absolute; "" when none) and ``checkpoint_sha256``.
    """
    import torch

    checkpoint_path = Path(checkpoint).resolve() if checkpoint is not None else None
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "command_line": command_line,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "device": str(device),
        "seed": -1 if seed is None else int(seed),
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else "",
        "checkpoint_sha256": checkpoint_sha256,
    }


def write_dataset(
    group: h5py.Group, name: str, data: Any, *, description: str, units: str, **attrs: Any
) -> h5py.Dataset:
    """Write one dataset with its ``description`` and ``units`` (``"1"`` for dimensionless).

    Tensors are converted to numpy; NaN and inf are stored as they are.
    """
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    if isinstance(data, str) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str)):
        data = np.asarray(data, dtype=h5py.string_dtype())
    dataset = group.create_dataset(name, data=data)
    dataset.attrs["description"] = description
    dataset.attrs["units"] = units
    for key, value in attrs.items():
        dataset.attrs[key] = _attr_value(value)
    return dataset


def open_results(path: Path | str) -> h5py.File:
    """Open a results file read-only.

    Raises:
        ProbeError: if it is missing, not HDF5, or not written by this tool (no ``kind``).
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"Results file '{path}' is a folder, not a file." if path.is_dir()
                         else f"Results file '{path}' does not exist.")
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        raise ProbeError(f"'{path}' is not an HDF5 file.") from None
    if "kind" not in h5.attrs:
        h5.close()
        raise ProbeError(f"'{path}' is an HDF5 file but not a landscape_probe results file (no 'kind' attribute).")
    return h5


def read_group(group: h5py.Group) -> dict[str, np.ndarray]:
    """The datasets directly under ``group`` as numpy arrays (strings decoded), by name."""
    arrays = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            value = item.asstr()[()] if h5py.check_string_dtype(item.dtype) else item[()]
            arrays[name] = np.asarray(value)
    return arrays


def read_attrs(item: h5py.Group | h5py.Dataset) -> dict[str, Any]:
    """An object's attributes as plain Python values: ``str``, ``int``, ``float``, ``bool``."""
    return {key: plain_value(value) for key, value in item.attrs.items()}


def plain_value(value: Any) -> Any:
    """An attribute as h5py returns it (bytes, numpy scalars) turned into a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attr_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (Path, str)):
        return str(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value
