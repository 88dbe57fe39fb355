"""The plane of a training trajectory: its first two principal directions around the plane's centre W.

Li et al. (NeurIPS 2018, §7) draw a run's path on the plane spanned by the
first two principal components of the matrix M whose rows are
m_t = W_t − W (the saved weights minus the final ones, flattened over the
moved layers). Here M's columns are centred (as a PCA fits them), its thin
SVD M_c = U S Vᵀ gives the unit directions d₁, d₂ (the first two rows of Vᵀ)
and the fraction of the variance each explains, s_k² / Σ_j s_j²; each
snapshot is then placed at (a_t, b_t) = (m_t·d₁, m_t·d₂), so that W itself
sits at the origin, and what the plane misses of it is the residual
||m_t − a_t·d₁ − b_t·d₂||.

Example:
    >>> import torch
    >>> centre = {"w": torch.zeros(3)}
    >>> path = [{"w": torch.tensor([2.0, 0.0, 0.0])}, {"w": torch.tensor([1.0, 1.0, 0.0])}, centre]
    >>> plane = trajectory_plane(path, centre, ["w"])
    >>> [round(float(r), 6) for r in plane.residual]
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape_probe.errors import ProbeError
from landscape_probe.params import Params


@dataclass(frozen=True)
class TrajectoryPlane:
    """The two unit directions, and where each snapshot lies on the plane they span.

    Attributes:
        d1, d2: unit directions (parameter dicts over the moved layers, in the centre's dtype and device).
        coordinates: (T, 2) array, (a_t, b_t) of each snapshot.
        residual: (T,) array, ||m_t − a_t·d₁ − b_t·d₂||.
        explained_variance_ratio: (2,) array, the share of the trajectory's variance along d₁ and d₂.
    """

    d1: Params
    d2: Params
    coordinates: np.ndarray
    residual: np.ndarray
    explained_variance_ratio: np.ndarray


def trajectory_plane(states: Sequence[Params], centre: Params, names: Sequence[str]) -> TrajectoryPlane:
    """The principal plane of ``states`` (dicts holding at least ``names``) around ``centre``; computed in float64.

    Raises:
        ProbeError: when a snapshot lacks a moved layer or has another shape, or the trajectory spans no plane.
    """
    rows = []
    for i, state in enumerate(states):
        missing = [k for k in names if k not in state or tuple(state[k].shape) != tuple(centre[k].shape)]
        if missing:
            raise ProbeError(f"Trajectory snapshot {i} lacks '{missing[0]}' or holds it in another shape; "
                             "was it saved from this checkpoint's run?")
        rows.append(torch.cat([(state[k].double().cpu() - centre[k].double().cpu()).reshape(-1) for k in names]))
    matrix = torch.stack(rows)
    centred = matrix - matrix.mean(dim=0, keepdim=True)
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    if len(singular) < 2 or not float(singular[1]) > 0:
        raise ProbeError("The saved weights lie on one line (or one point), so they span no plane.")
    directions = right[:2]
    coordinates = matrix @ directions.T
    residual = torch.linalg.vector_norm(matrix - coordinates @ directions, dim=1)
    variance = singular**2
    like = {k: centre[k] for k in names}
    return TrajectoryPlane(
        d1=_unflatten(directions[0], like), d2=_unflatten(directions[1], like),
        coordinates=coordinates.numpy(), residual=residual.numpy(),
        explained_variance_ratio=(variance[:2] / variance.sum()).numpy(),
    )


def _unflatten(vector: Tensor, like: Params) -> Params:
    out, start = {}, 0
    for k, tensor in like.items():
        out[k] = vector[start : start + tensor.numel()].reshape(tensor.shape).to(dtype=tensor.dtype, device=tensor.device)
        start += tensor.numel()
    return out


def covering_range(values: np.ndarray, points: int = 21, margin: float = 0.2) -> np.ndarray:
    """``points`` evenly spaced values covering ``values`` and the origin, with ``margin`` of the span beyond."""
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    span = (high - low) or 1.0
    return np.linspace(low - margin * span, high + margin * span, points)
