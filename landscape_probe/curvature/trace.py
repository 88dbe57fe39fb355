"""The trace of a symmetric operator by Hutchinson's estimator, stopped when its standard error is small enough.

For z with independent Rademacher (±1) entries, E[zᵀ A z] = tr A and
Var[zᵀ A z] = 2 Σ_{i≠j} A_ij² (Hutchinson, Commun. Stat. Simul. Comput. 1989;
the least variance among vectors with independent entries). The mean of S
samples estimates tr A with standard error σ/√S, estimated by the samples'
standard deviation: ``s / √S``. Sampling stops when that standard error is at
most ``tolerance · |mean|`` (after ``min_samples``, so that s means something)
or after ``max_samples``. PyHessian (Yao et al., 2020) stops on the relative
change of the mean instead, which says nothing of the error; here the error is
reported with the estimate.

Example:
    >>> import torch
    >>> a = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> signs = lambda i: (2 * torch.randint(0, 2, (3,), generator=torch.Generator().manual_seed(i)) - 1).double()
    >>> estimate = hutchinson_trace(lambda z: a @ z, signs, max_samples=20)
    >>> estimate.trace, estimate.standard_error
    (6.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from landscape_probe.curvature.lanczos import MatVec


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate: the mean of the samples zᵀ A z, its standard error and the samples themselves."""

    trace: float
    standard_error: float
    samples: list[float]


def hutchinson_trace(
    matvec: MatVec,
    draw: Callable[[int], Tensor],
    *,
    max_samples: int = 200,
    min_samples: int = 10,
    tolerance: float = 0.0,
) -> TraceEstimate:
    """tr A ≈ mean of zᵀ A z over Rademacher z, with its standard error.

    Args:
        matvec: ``z ↦ A z`` on flat vectors.
        draw: sample index → a Rademacher vector (sample i must not depend on how many are drawn).
        max_samples: the most products.
        min_samples: the fewest products before the tolerance may stop the sampling.
        tolerance: stop once ``standard_error ≤ tolerance · |trace|``; 0 spends all ``max_samples``.

    Returns:
        :class:`TraceEstimate`; one sample gives a NaN standard error.
    """
    if max_samples < 1:
        raise ValueError("hutchinson_trace needs at least one sample")
    samples: list[float] = []
    for index in range(max_samples):
        z = draw(index)
        samples.append(float(z @ matvec(z)))
        mean, error = _mean_and_standard_error(samples)
        if len(samples) >= min_samples and error <= tolerance * abs(mean):
            break
    mean, error = _mean_and_standard_error(samples)
    return TraceEstimate(mean, error, samples)


def _mean_and_standard_error(samples: list[float]) -> tuple[float, float]:
    count = len(samples)
    mean = math.fsum(samples) / count
    if count < 2:
        return mean, float("nan")
    variance = math.fsum((s - mean) ** 2 for s in samples) / (count - 1)
    return mean, math.sqrt(variance / count)
