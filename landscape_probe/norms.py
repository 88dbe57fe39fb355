"""The norm of one layer: Frobenius, spectral or per neuron (DESIGN.md §2).

A layer tensor of shape ``(out, ...)`` is read as the matrix ``(out, -1)``:
a Linear weight as it is, a conv kernel with each filter flattened into a row.
A 1-D tensor (a bias, a norm scale) is read as one vector under every norm.

Example:
    >>> import torch
    >>> w = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    >>> float(layer_norm(w, "frobenius")), round(float(layer_norm(w, "spectral")), 4)
    (5.0, 4.0)
    >>> layer_norm(w, "neuron").tolist()
    [3.0, 4.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape_probe.errors import ProbeError

NORMS = ("frobenius", "spectral", "neuron")


def layer_norm(tensor: Tensor, norm: str) -> Tensor:
    """The size of one layer in the chosen norm.

    Args:
        tensor: a parameter or a perturbation of one.
        norm: ``frobenius`` (``||W||_F``, a 0-d tensor), ``spectral`` (the largest
            singular value of the ``(out, -1)`` matrix, by :func:`spectral_norm`;
            the Euclidean norm for 1-D tensors; a 0-d tensor) or ``neuron`` (the
            vector of row norms ``||W_i||``, one per output row; see :func:`row_norms`).

    Raises:
        ProbeError: for an unknown norm.
    """
    if norm == "frobenius":
        return torch.linalg.vector_norm(tensor)
    if norm == "spectral":
        if tensor.ndim < 2:
            return torch.linalg.vector_norm(tensor)
        return spectral_norm(tensor.reshape(tensor.shape[0], -1))
    if norm == "neuron":
        return row_norms(tensor)
    raise ProbeError(f"Unknown norm '{norm}'; use one of {', '.join(NORMS)}.")


def row_norms(tensor: Tensor) -> Tensor:
    """Euclidean norm of each output row (index 0) of a tensor; a 1-D tensor is one row.

    Returns a vector of length ``out`` (length 1 for a 1-D or 0-d tensor).
    """
    if tensor.ndim < 2:
        return torch.linalg.vector_norm(tensor).reshape(1)
    return torch.linalg.vector_norm(tensor.reshape(tensor.shape[0], -1), dim=1)


def spectral_norm(matrix: Tensor, *, iterations: int = 500, tolerance: float = 1e-12) -> Tensor:
    """The largest singular value σ₁ of a matrix, by power iteration on ``AᵀA``.

    From a fixed Gaussian start v (seed 0, so the result is deterministic and
    exactly proportional to the matrix), iterate ``v ← AᵀA v / ||AᵀA v||``; the
    estimate ``σ = ||A v||`` rises monotonically to σ₁, its relative error
    shrinking like ``(σ₂/σ₁)^{4k}`` after k steps. It stops when σ changes by
    less than ``tolerance`` relatively, or after ``iterations`` steps. The
    iteration runs in float64 whatever the matrix's dtype, so that float32
    rounding does not stall it short of σ₁.
    """
    work = matrix.to(torch.float64)
    if work.shape[0] < work.shape[1]:
        work = work.T
    generator = torch.Generator(device="cpu").manual_seed(0)
    vector = torch.randn(work.shape[1], generator=generator, dtype=work.dtype).to(work.device)
    estimate = torch.zeros((), dtype=work.dtype, device=work.device)
    for _ in range(iterations):
        vector = vector / torch.linalg.vector_norm(vector)
        image = work @ vector
        previous, estimate = estimate, torch.linalg.vector_norm(image)
        if estimate == 0 or abs(float(estimate - previous)) <= tolerance * float(estimate):
            break
        vector = work.T @ image
    return estimate.to(matrix.dtype)
