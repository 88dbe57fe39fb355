"""Random vectors shaped like a parameter dict, reproducible by a seed on CPU and CUDA alike.

Example:
    >>> import torch
    >>> v = gaussian_like({"w": torch.zeros(2, 3)}, seed=0)
    >>> v["w"].shape, bool((rademacher_like({"w": torch.zeros(4)}, seed=0)["w"].abs() == 1).all())
    (torch.Size([2, 3]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape_probe.params import Params

__all__ = ["gaussian_like", "rademacher_like"]


def gaussian_like(params: Params, seed: int) -> Params:
    """Standard normal tensors shaped like ``params``, reproducible by ``seed``.

    The numbers are drawn on the CPU from one ``torch.Generator`` seeded once,
    layer after layer in key order, then moved to each tensor's device and
    dtype, so the same seed gives the same vector on CPU and CUDA.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=generator, dtype=_draw_dtype(v)).to(device=v.device, dtype=v.dtype)
        for k, v in params.items()
    }


def rademacher_like(params: Params, seed: int) -> Params:
    """Independent ±1 entries (each with probability ½) shaped like ``params``; see :func:`gaussian_like`."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return {
        k: (2 * torch.randint(0, 2, v.shape, generator=generator) - 1).to(device=v.device, dtype=v.dtype)
        for k, v in params.items()
    }


def _draw_dtype(tensor: Tensor) -> torch.dtype:
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32
