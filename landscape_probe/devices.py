"""Choosing the torch device from the ``--device`` option, and copying what is saved to the CPU.

Example:
    >>> import torch
    >>> portable({"w": [torch.ones(1)]})["w"][0].device.type
    'cpu'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    import torch

def resolve_device(name: str) -> "torch.device":
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a ``torch.device``.

    ``auto`` picks CUDA when a GPU is visible and the CPU otherwise. Under ``torchrun``
    (``LOCAL_RANK`` set, more than one process), ``auto`` and ``cuda`` mean this rank's own GPU,
    ``cuda:LOCAL_RANK``, and ``cuda:N`` is refused: it would put every rank on one GPU, which NCCL
    does not allow.

    Raises:
        ProbeError: for an unknown name, CUDA asked for where there is none, a GPU index that is not
            there, or ``cuda:N`` under ``torchrun``.
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
        if name == "cuda":
            return torch.device(name)
        index = name.removeprefix("cuda:")
        if local is not None:
            raise ProbeError(f"--device {name} would put every torchrun rank on one GPU; use --device cuda, which "
                             "gives each rank its own (cuda:LOCAL_RANK).")
        if not index.isascii() or not index.isdigit():
            raise ProbeError(f"Unknown device '{name}'; use one of auto, cpu, cuda, cuda:N with N a GPU number.")
        if int(index) >= torch.cuda.device_count():
            raise ProbeError(f"--device {name} was asked for but this machine has "
                             f"{torch.cuda.device_count()} visible GPU(s), numbered from 0.")
        return torch.device("cuda", int(index))
    raise ProbeError(f"Unknown device '{name}'; use one of auto, cpu, cuda, cuda:N.")



@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """For the block (or the decorated call), float32 convolutions and matrix products in full float32 on CUDA.

    On NVIDIA GPUs since Ampere, torch runs cuDNN convolutions in TF32 by default
    (``torch.backends.cudnn.allow_tf32``), and a user may have turned TF32 on for
    matrix products too (``torch.set_float32_matmul_precision("high")``). TF32 keeps
    10 bits of mantissa: each product's inputs are rounded to about 5e-4 relative,
    far more than the changes a slice measures at small scales, so the measured
    relative changes, Hessian-vector products and planes would no longer be the
    CPU's numbers to float32 rounding. Every measuring entry point (``run_slice``,
    ``lp.slice``, ``lp.plane``, ``lp.hessian``, ``lp.interpolate``) runs inside this
    block; training does not.

    A flag that is on is turned off for the block and on again afterwards. The legacy
    flags are used because their setters keep torch's legacy and new precision
    settings in step (setting only the new ``fp32_precision`` ones leaves the two
    disagreeing, which later calls refuse); a flag that cannot be read (a state already
    mixing the two APIs) is left alone. Nothing changes on a CPU.

    Example:
        >>> with exact_float32():
        ...     pass
    """
    import torch

    turned_off = []
    for flags in (torch.backends.cudnn, torch.backends.cuda.matmul):
        try:
            on = bool(flags.allow_tf32)
        except RuntimeError:  # the user's settings already mix the legacy and new APIs: not ours to touch
            continue
        if on:
            flags.allow_tf32 = False
            turned_off.append(flags)
    try:
        yield
    finally:
        for flags in turned_off:
            flags.allow_tf32 = True


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


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation the device refused: ``torch.OutOfMemoryError`` (a GPU's), or the
    ``RuntimeError`` torch's CPU allocator raises. Read without importing torch (an error torch raised means
    it is imported already), so an error path stays light."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(err, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(err)
