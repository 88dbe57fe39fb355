"""Directions in weight space, and how a scale t turns one into a step ΔW (DESIGN.md §2).

A direction d = {d_l} has the keys and shapes of the perturbed parameters W.
:func:`unit_step` turns it into the step per unit scale u, so that the
perturbed weights at scale t are ``W + t·u``; :func:`kappa` measures the
relative size ``κ_l = ||ΔW_l|| / ||W_l||`` of a step in each layer.

Norms of a layer (``norm=``):

- ``frobenius``: ``||W||_F``, the norm of Bernstein et al. (2020);
- ``spectral``: the largest singular value ``||W||_*``, by power iteration on
  the matrix with conv kernels reshaped to ``(out, -1)``;
- ``neuron``: the norm of each output row (each filter), as in Nero.

A 1-D tensor (a bias, a norm scale) counts as one vector under every norm:
its Euclidean norm, and a single "row".

Example:
    >>> import torch
    >>> w = {"w": torch.tensor([[3.0, 4.0], [0.0, 1.0]])}
    >>> u = unit_step({"w": torch.ones(2, 2)}, w, "relative", "neuron")
    >>> [round(v, 4) for v in kappa(u, w, "neuron").values()]
    [1.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape_probe import params as P
from landscape_probe.curvature.hessian import GradientGraph, ParamsLossFn, gaussian_like, top_eigenpair
from landscape_probe.errors import ProbeError
from landscape_probe.norms import NORMS, layer_norm, row_norms
from landscape_probe.params import Params

SCALINGS = ("relative", "global", "filter")

__all__ = [
    "NORMS",
    "SCALINGS",
    "checkpoint_direction",
    "eigenvector_direction",
    "filter_normalize",
    "gradient_direction",
    "kappa",
    "layer_norm",
    "loss_gradient",
    "random_direction",
    "unit_step",
]


def loss_gradient(loss_fn: ParamsLossFn, params: Params) -> Params:
    """``∇loss(W)`` by reverse-mode autograd on fresh leaves (params may not require grad)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad():
        gradient = torch.autograd.grad(loss_fn(leaves), list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g.detach() for (k, v), g in zip(leaves.items(), gradient)}


def gradient_direction(loss_fn: ParamsLossFn, params: Params) -> Params:
    """The descent direction ``d = −∇loss(W)``."""
    return P.scale(-1.0, loss_gradient(loss_fn, params))


def random_direction(params: Params, seed: int) -> Params:
    """A Gaussian direction, entries N(0, 1), with the shapes, dtypes and devices of ``params``.

    Drawn on the CPU from a generator seeded with ``seed``, so a seed gives the
    same direction on every device.
    """
    return gaussian_like(params, seed)


def checkpoint_direction(params: Params, other: Params) -> Params:
    """The direction toward a second checkpoint, ``d = W_other − W``: ``W + d`` is the other network.

    Stepping along it is linear interpolation between the two checkpoints; the
    other checkpoint's tensors are cast to this one's dtypes and devices.

    Raises:
        ProbeError: if the two checkpoints have different parameter names or
            shapes, or the same weights.
    """
    check_same_parameters(params, other)
    direction = {k: other[k].to(dtype=v.dtype, device=v.device) - v for k, v in params.items()}
    if all(not torch.any(d) for d in direction.values()):
        raise ProbeError("The two checkpoints have identical weights in the perturbed layers: there is no direction.")
    return direction


def check_same_parameters(params: Params, other: Params) -> None:
    """Refuse a second checkpoint whose parameters differ from these in name or shape.

    Raises:
        ProbeError: naming the missing, unexpected or differently shaped parameters.
    """
    missing, extra = sorted(set(params) - set(other)), sorted(set(other) - set(params))
    if missing or extra:
        raise ProbeError(
            "The second checkpoint has different parameters: "
            f"missing {_listing(missing)}, unexpected {_listing(extra)}."
        )
    mismatched = [k for k in params if params[k].shape != other[k].shape]
    if mismatched:
        k = mismatched[0]
        raise ProbeError(
            f"The second checkpoint's parameter '{k}' has shape {tuple(other[k].shape)} "
            f"but this checkpoint's has {tuple(params[k].shape)}"
            + (f" ({len(mismatched) - 1} more differ)." if len(mismatched) > 1 else ".")
        )


def eigenvector_direction(graph: GradientGraph, seed: int, *, iterations: int = 50) -> Params:
    """The unit eigenvector of the Hessian eigenvalue of largest magnitude (its sign is arbitrary).

    Lanczos on the products of ``graph``, the gradient graph at W (or any object with its
    methods: a ``ChunkedHessian``, a ``SummedGraph``), runs to a relative eigenvalue tolerance of
    1e-8, so that the vector's residual ``||H v − λ v||`` is about 1e-4 · |λ| (the eigenvector
    converges as the square root of the eigenvalue).
    """
    return top_eigenpair(graph, iterations=iterations, tolerance=1e-8, seed=seed).eigenvector


def filter_normalize(direction: Params, params: Params, out: Params | None = None, sign: float = 1.0) -> Params:
    """Filter normalisation (Li et al., NeurIPS 2018, "Visualizing the loss landscape of neural nets").

    Each output row / filter i (index 0) of ``d_l`` is rescaled to the norm of
    the same row of ``W_l``: ``d_{l,i} · ||W_{l,i}|| / ||d_{l,i}||``. A 1-D tensor
    is rescaled as a whole, ``d_l · ||W_l|| / ||d_l||``. Rows where d or W is
    zero become zero. This is the same step as ``relative`` scaling with the
    ``neuron`` norm. ``out``: tensors shaped like ``params`` to write the result into (and return).
    """
    return {k: _rescale_rows(direction[k], w, None if out is None else out[k], sign) for k, w in params.items()}


def unit_step(direction: Params, params: Params, scaling: str, norm: str = "frobenius",
              out: Params | None = None, sign: float = 1.0) -> Params:
    """The step per unit scale, u, so that the perturbed weights at scale t are ``W + t·u``.

    - ``relative``: ``u_l = ||W_l|| · d_l / ||d_l||`` in the chosen norm, so that
      ``κ_l(t) = t`` for every layer; with ``neuron``, row by row,
      ``u_{l,i} = ||W_{l,i}|| · d_{l,i} / ||d_{l,i}||``.
    - ``global``: ``u = d / ||d||`` (Euclidean over all layers), so ``||ΔW|| = t``.
    - ``filter``: ``u = filter_normalize(d, W)``.

    A layer (or row) whose direction is zero gets a zero step, and so does one
    whose weight norm is zero under ``relative`` scaling (it has no scale to
    be relative to). ``norm`` matters only for ``relative`` scaling. ``out``:
    tensors shaped like ``params`` that receive the step (and are returned), so
    that a caller can hold u in a buffer of its own with no second copy;
    ``sign=-1``: the step of −d (:func:`flat_unit_step`).

    Raises:
        ProbeError: for an unknown scaling or norm, or a direction that is zero everywhere.
    """
    _check_choice("scaling", scaling, SCALINGS)
    _check_choice("norm", norm, NORMS)
    total = float(P.norm(direction))
    if total == 0.0:
        raise ProbeError("The direction is zero in every perturbed layer, so there is nothing to step along.")
    if scaling == "global":
        return {k: _times(direction[k], sign / total, out, k) for k in params}
    if scaling == "filter" or norm == "neuron":
        return filter_normalize(direction, params, out, sign)
    step = {}
    for k, w in params.items():
        d_norm, w_norm = float(layer_norm(direction[k], norm)), float(layer_norm(w, norm))
        step[k] = _times(direction[k], sign * w_norm / d_norm if d_norm > 0.0 else 0.0, out, k)
    return step


VANISHED = ("the direction is zero in it (along the gradient: the loss does not depend on it to first order on "
            "the probe set, e.g. a layer the output does not use, or one behind dead units)")
"""Why ``--layers`` has no sweep of a layer (or group) of its own: :func:`vanishes`."""


def vanishes(direction: Params, members: list[str]) -> bool:
    """Whether ``direction`` is zero in every one of ``members``, so that perturbing them alone has no step u."""
    return not any(bool(direction[name].any()) for name in members)


def flat_unit_step(direction: Params, params: Params, scaling: str, norm: str = "frobenius",
                   sign: float = 1.0, out: Tensor | None = None) -> Tensor:
    """:func:`unit_step` (or d itself for ``scaling="none"``) written straight into one flat tensor, laid out as
    ``params.flatten(params)``: u is held once, with no per-layer copy made on the way.

    ``sign=-1`` gives the step of −d, with the sign folded into each scale
    factor, so that −g(0) need not be made to step along it: the numbers are
    the same, ``(−d)·s = d·(−s)`` exactly in floating point, and every norm of
    −d is that of d. ``out``: a flat buffer that receives u (overwritten) instead of a new one.
    """
    flat = P.empty_flat(params) if out is None else out
    unit = P.unflatten(flat, params)
    if scaling == "none":
        for name, part in unit.items():
            torch.mul(direction[name], sign, out=part) if sign != 1.0 else part.copy_(direction[name])
    else:
        unit_step(direction, params, scaling, norm, out=unit, sign=sign)
    return flat


def kappa(step: Params, params: Params, norm: str = "frobenius") -> dict[str, float]:
    """κ_l = ||ΔW_l|| / ||W_l|| for each layer: the relative size of a step (DESIGN.md §2).

    With ``neuron``, the largest relative change of any row,
    ``max_i ||ΔW_{l,i}|| / ||W_{l,i}||``. A zero change counts 0 even where the
    weight is zero; a nonzero change of a zero weight (row) counts ``inf``.
    """
    _check_choice("norm", norm, NORMS)
    if norm == "neuron":
        return {k: _max_ratio(row_norms(step[k]), row_norms(w)) for k, w in params.items()}
    return {
        k: _max_ratio(layer_norm(step[k], norm).reshape(1), layer_norm(w, norm).reshape(1)) for k, w in params.items()
    }


def _times(d: Tensor, factor: float | Tensor, out: Params | None, k: str) -> Tensor:
    """``d · factor``, into ``out[k]`` when given (the same product either way)."""
    return d * factor if out is None else torch.mul(d, factor, out=out[k])


def _rescale_rows(d: Tensor, w: Tensor, out: Tensor | None = None, sign: float = 1.0) -> Tensor:
    d_rows, w_rows = row_norms(d), row_norms(w)
    factor = torch.where(d_rows > 0, w_rows / torch.where(d_rows > 0, d_rows, 1.0), 0.0).to(d.dtype)
    factor = factor if sign == 1.0 else factor * sign
    factor = factor[0] if d.ndim < 2 else factor.reshape((-1,) + (1,) * (d.ndim - 1))
    return d * factor if out is None else torch.mul(d, factor, out=out)


def _max_ratio(numerator: Tensor, denominator: Tensor) -> float:
    return float(torch.where(numerator == 0, 0.0, numerator / denominator).max())


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ProbeError(f"Unknown {what} '{value}'; use one of {', '.join(choices)}.")


def _listing(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
