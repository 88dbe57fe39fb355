"""Algebra on parameter dicts ``dict[str, Tensor]``.

Weights, directions, gradients and steps are all dicts from parameter name to
tensor with the same keys. This module is the one place that adds, scales and
measures them, so that no other module loops over layers by hand.

Example:
    >>> import torch
    >>> a = {"w": torch.ones(2, 2), "b": torch.ones(2)}
    >>> round(float(norm(a)) ** 2, 4)
    6.0
    >>> axpy(2.0, a, a)["w"][0, 0].item()
    3.0
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


def detached_params(model: nn.Module, names: Iterable[str] | None = None) -> Params:
    """Detached copies-by-reference of a model's named parameters (optionally a subset)."""
    named = dict(model.named_parameters())
    keys = list(named) if names is None else list(names)
    return {k: named[k].detach() for k in keys}


def has_tied_parameters(model: nn.Module) -> bool:
    """Whether one parameter is reachable under two names (tied weights, e.g. an embedding shared with the head)."""
    return len(list(model.named_parameters(remove_duplicate=False))) != len(dict(model.named_parameters()))


def select_layers(model: nn.Module, pattern: str | None = None, include_1d: bool = False) -> list[str]:
    """Names of the parameters that count as layers (DESIGN.md §2).

    By default every parameter with ``ndim >= 2``; ``include_1d`` adds biases
    and normalisation scales. ``pattern`` is a glob (or comma-separated globs)
    on parameter names that further restricts the set.
    """
    globs = [g.strip() for g in pattern.split(",")] if pattern else None
    names = []
    for name, p in model.named_parameters():
        if p.ndim < 2 and not include_1d:
            continue
        if globs is not None and not any(fnmatch.fnmatchcase(name, g) for g in globs):
            continue
        names.append(name)
    return names


def zip_map(fn: Callable[[Tensor, Tensor], Tensor], a: Params, b: Params) -> Params:
    """Apply ``fn`` to matching tensors of two dicts with the same keys."""
    return {k: fn(a[k], b[k]) for k in a}


def add(a: Params, b: Params) -> Params:
    """a + b."""
    return zip_map(torch.add, a, b)


def sub(a: Params, b: Params) -> Params:
    """a − b."""
    return zip_map(torch.sub, a, b)


def scale(alpha: float | Tensor, a: Params) -> Params:
    """alpha · a."""
    return {k: alpha * v for k, v in a.items()}


def axpy(alpha: float | Tensor, x: Params, y: Params) -> Params:
    """alpha · x + y, the step ``W + t·d`` in one call."""
    return {k: y[k] + alpha * x[k] for k in y}


def scale_per_layer(factors: dict[str, float | Tensor], a: Params) -> Params:
    """Multiply each layer by its own factor."""
    return {k: factors[k] * v for k, v in a.items()}


def dot(a: Params, b: Params) -> Tensor:
    """Euclidean inner product over all layers, as a 0-d tensor."""
    return sum((torch.sum(a[k] * b[k]) for k in a), start=torch.zeros((), dtype=_dtype(a), device=_device(a)))


def norm(a: Params) -> Tensor:
    """Euclidean norm over all layers (the Frobenius norm of the concatenation)."""
    return torch.sqrt(dot(a, a))


def layer_norms(a: Params) -> dict[str, Tensor]:
    """Frobenius norm of each layer."""
    return {k: torch.linalg.vector_norm(v) for k, v in a.items()}


def zeros_like(a: Params) -> Params:
    """Zeros with the shapes of ``a``."""
    return {k: torch.zeros_like(v) for k, v in a.items()}


def clone(a: Params) -> Params:
    """Independent copies."""
    return {k: v.clone() for k, v in a.items()}


def flatten(a: Params) -> Tensor:
    """All layers concatenated into one vector, in key order."""
    return torch.cat([v.reshape(-1) for v in a.values()])


def empty_flat(like: Params) -> Tensor:
    """An uninitialised flat vector with room for every entry of ``like``, in its dtype and on its device
    (a buffer that :func:`unflatten` then splits into views)."""
    return torch.empty(numel(like), dtype=_dtype(like), device=_device(like))


def unflatten(vector: Tensor, like: Params) -> Params:
    """Inverse of :func:`flatten`: split a vector into tensors shaped like ``like``."""
    needed = numel(like)
    if vector.numel() != needed:
        raise ValueError(f"vector has {vector.numel()} entries but the parameters need {needed}")
    # one split (a single call for every layer) and a view each: this runs at every point of a sweep
    pieces = vector.split([v.numel() for v in like.values()])
    return {k: piece.reshape(v.shape) for (k, v), piece in zip(like.items(), pieces)}


def numel(a: Params) -> int:
    """Total number of entries."""
    return sum(v.numel() for v in a.values())


def _dtype(a: Params) -> torch.dtype:
    return next(iter(a.values())).dtype if a else torch.get_default_dtype()


def _device(a: Params) -> torch.device:
    return next(iter(a.values())).device if a else torch.device("cpu")
