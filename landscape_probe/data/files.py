"""Read a user's data file: ``.npz`` or ``.pt``, safely.

Accepted layouts:

- ``.npz`` with arrays ``x`` and ``y`` and optionally ``x_test`` and ``y_test``
  (read with ``allow_pickle=False``, so an object array is refused, never unpickled);
- ``.pt`` holding a dict with the same keys, or a tuple ``(x, y)`` or
  ``(x, y, x_test, y_test)`` (read with ``torch.load(weights_only=True)``).

Both are zip archives; their CRC-32 checksums are verified before reading.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(path, x=np.zeros((4, 3)), y=np.arange(4))
    >>> sorted(read_arrays(path))
    ['x', 'y']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from landscape_probe.checkpoints.audit import check_zip_integrity
from landscape_probe.checkpoints.formats import quiet_loading
from landscape_probe.errors import ProbeError

SUFFIXES = (".npz", ".pt", ".pth")
KEYS = ("x", "y", "x_test", "y_test")


def read_arrays(path: str | Path) -> dict[str, Tensor]:
    """Read ``x``, ``y`` (and ``x_test``, ``y_test`` when present) from a user file.

    Returns:
        The arrays as tensors, dtypes unchanged, keyed by name.

    Raises:
        ProbeError: for a missing or unreadable file, an unknown suffix, a
            payload of the wrong kind, or only one of ``x_test``/``y_test``.
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"Data file {path} does not exist or is not a file.")
    if path.suffix not in SUFFIXES:
        raise ProbeError(f"Data file {path} must end in .npz or .pt.")
    with path.open("rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            check_zip_integrity(path, "Data file")
    arrays = _read_npz(path) if path.suffix == ".npz" else _read_pt(path)
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise ProbeError(f"Data file {path} has no array {' or '.join(missing)}; it needs x and y.")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ProbeError(f"Data file {path} has only one of x_test and y_test; give both or neither.")
    return arrays


def _read_npz(path: Path) -> dict[str, Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: torch.from_numpy(_numeric(archive[key], key, path)) for key in KEYS if key in archive}
    except ProbeError:
        raise
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise ProbeError(f"Data file {path} could not be read as .npz (ValueError: {err}).") from None
        raise ProbeError(
            f"Data file {path} holds Python objects (an object array), which are never unpickled because that can run code; store numeric arrays."
        ) from None
    except Exception as err:  # numpy raises several kinds for damaged archives
        raise ProbeError(f"Data file {path} could not be read as .npz ({type(err).__name__}: {err}).") from None


def _read_pt(path: Path) -> dict[str, Tensor]:
    try:
        with quiet_loading():
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only refusals all surface here
        raise ProbeError(
            f"Data file {path} could not be read as a tensor file with weights_only=True ({type(err).__name__})."
        ) from None
    if isinstance(payload, (tuple, list)) and len(payload) in (2, 4):
        payload = dict(zip(KEYS, payload))
    if not isinstance(payload, dict):
        raise ProbeError(f"Data file {path} must hold a dict with keys x and y or a tuple (x, y).")
    arrays = {}
    for key in KEYS:
        if key in payload:
            if not isinstance(payload[key], Tensor):
                raise ProbeError(f"In data file {path}, {key} is a {type(payload[key]).__name__}, not a tensor.")
            arrays[key] = payload[key]
    return arrays


def _numeric(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise ProbeError(f"In data file {path}, {key} has dtype {array.dtype}; use integers or floats.")
    return np.ascontiguousarray(array)
