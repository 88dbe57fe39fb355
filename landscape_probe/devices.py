"""Choosing the torch device from the ``--device`` option, and copying what is saved to the CPU.

Example:
    >>> import torch
    >>> portable({"w": [torch.ones(1)]})["w"][0].device.type
    'cpu'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    import torch

def resolve_device(name: str) -> "torch.device":
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a ``torch.device``.

    ``auto`` picks CUDA when a GPU is visible and the CPU otherwise. Under ``torchrun``
    (``LOCAL_RANK`` set, more than one process), ``auto`` and ``cuda`` mean this rank's own GPU,
    ``cuda:LOCAL_RANK``.

    Raises:
        ProbeError: for an unknown name, or CUDA asked for where there is none.
    """
    import os

    import torch

    local = os.environ.get("LOCAL_RANK") if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else None
    if name in ("auto", "cuda") and local is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(local)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ProbeError(f"--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto.")
        return torch.device(name)
    raise ProbeError(f"Unknown device '{name}'; use one of auto, cpu, cuda, cuda:N.")



def portable(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples) copied to the CPU.

    What is saved or sent this way reads back on a machine without the device it was made on
    (``torch.load`` would otherwise look for the GPU its tensors were on).
    """
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(item) for item in value)
    return value
