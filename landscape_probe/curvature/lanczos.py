"""The extreme eigenvalue of a symmetric operator by Lanczos iteration, given only its products ``A q``.

Lanczos (1950) builds an orthonormal basis q₁ … q_k of the Krylov space
span{q₁, A q₁, …, A^{k−1} q₁} in which A is the tridiagonal matrix

    T_k = tridiag(β_{j−1}, α_j, β_j),   α_j = q_jᵀ A q_j,   β_j q_{j+1} = A q_j − α_j q_j − β_{j−1} q_{j−1}.

The eigenvalues θ of T_k (Ritz values) approximate A's extreme eigenvalues from
inside, and far faster than power iteration: for λ₁ > λ₂ ≥ … ≥ λ_n and a start
at angle φ to the top eigenvector, Kaniel–Paige–Saad bound the error after k
products by

    0 ≤ λ₁ − θ₁ ≤ (λ₁ − λ_n) · (tan φ / T_{k−1}(1 + 2γ))²,   γ = (λ₁ − λ₂) / (λ₂ − λ_n),

T_{k−1} the Chebyshev polynomial, which grows like (1 + 2γ + 2√(γ + γ²))^{k−1}
(Saad, *Numerical Methods for Large Eigenvalue Problems*, 2011, Thm 6.4);
power iteration only reaches (λ₂/λ₁)^{2k}. Every new vector is orthogonalised
against all earlier ones twice ("twice is enough", Giraud et al. 2005), so the
basis stays orthonormal in floating point and no eigenvalue is found twice.
The basis is kept in one matrix that grows by doubling: memory is k vectors.

It stops when the error of the Ritz value θ of largest magnitude is estimated
to be at most ``tolerance · |θ|``, by either of two rules: θ changed by at most
that between two products, the rule PyHessian's power iteration uses (Yao et
al., 2020); or Kato–Temple's bound ``|λ − θ| ≤ r² / gap`` (Parlett, *The
Symmetric Eigenvalue Problem*, 1998, §10-3), with the residual
``r = ||A y − θ y|| = β_k |s_k|`` read off T_k (no extra product) and the
distance to the nearest other Ritz value standing in for the gap, which saves
the one product the first rule spends confirming a converged value. Both are
estimates, not guarantees; a start nearly orthogonal to the top eigenvector
can stop early on a lower one, as power iteration can. It also stops when the
Krylov space is invariant and a fresh random vector, made orthogonal to it,
adds nothing (then every eigenvalue A shows is exact).

Example:
    >>> import torch
    >>> a = torch.diag(torch.tensor([3.0, 1.0, -7.0, 2.0], dtype=torch.float64))
    >>> result = largest_magnitude_eigenpair(lambda q: a @ q, torch.ones(4, dtype=torch.float64), iterations=10)
    >>> round(result.eigenvalue, 10), result.products
    (-7.0, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]
"""``q ↦ A q`` for a symmetric A, on flat vectors."""


@dataclass(frozen=True)
class LanczosResult:
    """The eigenpair found and what it cost.

    Attributes:
        eigenvalue: the Ritz value of largest magnitude, sign kept.
        eigenvector: its unit Ritz vector (flat, like the start).
        products: matrix-vector products spent.
        converged: whether the stopping rule held (else the iterations ran out).
        start_rayleigh_quotient: ``q₁ᵀ A q₁`` of the normalised start, α₁, free from the first product.
    """

    eigenvalue: float
    eigenvector: Tensor
    products: int
    converged: bool
    start_rayleigh_quotient: float


def largest_magnitude_eigenpair(
    matvec: MatVec,
    start: Tensor,
    *,
    iterations: int = 50,
    tolerance: float = 1e-4,
    restart: Callable[[], Tensor] | None = None,
) -> LanczosResult:
    """The eigenvalue of largest magnitude of a symmetric A, and its eigenvector, by Lanczos iteration.

    Args:
        matvec: ``q ↦ A q`` on flat vectors of ``start``'s shape, dtype and device.
        start: the first Krylov vector (any non-zero norm).
        iterations: the most products to spend.
        tolerance: stop when the relative change of the estimate is at most this.
        restart: a new random vector, drawn when the Krylov space closes before the
            estimate has settled (a start inside an invariant subspace); None: stop there.

    Returns:
        The :class:`LanczosResult`. A non-finite product gives a NaN eigenvalue.
    """
    if start.ndim != 1 or not float(start.norm()) > 0:
        raise ValueError("Lanczos needs a flat start vector with a positive, finite norm.")
    basis = _Basis(start / start.norm(), capacity=min(max(iterations, 1), 16) + 1)
    alphas: list[float] = []
    betas: list[float] = []
    estimate, previous, ritz = float("nan"), float("nan"), torch.ones(1, dtype=torch.float64)
    converged = restarted = False
    eps = torch.finfo(start.dtype).eps
    for step in range(max(iterations, 1)):
        product = matvec(basis.last())
        alpha = float(basis.last() @ product)
        product = basis.orthogonalise(product)
        beta = float(product.norm())
        alphas.append(alpha)
        if not (abs(alpha) < float("inf") and beta < float("inf")):
            return LanczosResult(float("nan"), basis.last(), step + 1, False, alphas[0])
        values, vectors = torch.linalg.eigh(_tridiagonal(alphas, betas))
        top = 0 if abs(float(values[0])) > abs(float(values[-1])) else len(values) - 1
        previous, estimate, ritz = estimate, float(values[top]), vectors[:, top]
        closed = beta <= 8 * eps * float(values.abs().max())
        converged = abs(estimate - previous) <= tolerance * abs(estimate) or (
            not (closed or restarted) and _kato_temple_estimate(values, top, beta * abs(float(ritz[-1])))
            <= tolerance * abs(estimate)
        )
        if converged or step == iterations - 1:
            break
        if closed:
            fresh = None if restart is None else restart()
            drawn_norm = 0.0 if fresh is None else float(fresh.norm())
            fresh = None if fresh is None else basis.orthogonalise(fresh)
            if fresh is None or float(fresh.norm()) <= eps**0.5 * drawn_norm:
                converged = True
                break
            product, beta, estimate, restarted = fresh, 0.0, float("nan"), True  # judge the new block afresh
        betas.append(beta)
        basis.append(product / float(product.norm()))
    eigenvector = basis.combine(ritz.to(start.dtype))
    return LanczosResult(estimate, eigenvector / eigenvector.norm(), len(alphas), converged, alphas[0])


def _kato_temple_estimate(ritz_values: Tensor, top: int, residual: float) -> float:
    """``r² / gap``: Kato–Temple's bound on |λ − θ| with the Ritz gap standing in for the spectral gap."""
    if len(ritz_values) < 2:
        return float("inf")
    others = torch.cat([ritz_values[:top], ritz_values[top + 1 :]])
    gap = float((others - ritz_values[top]).abs().min())
    return residual**2 / gap if gap > 0 else float("inf")


def _tridiagonal(alphas: list[float], betas: list[float]) -> Tensor:
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return t


class _Basis:
    """Orthonormal rows q₁ … q_k in one matrix that doubles when full."""

    def __init__(self, first: Tensor, capacity: int) -> None:
        self.rows = torch.empty(capacity, first.numel(), dtype=first.dtype, device=first.device)
        self.rows[0] = first
        self.size = 1

    def last(self) -> Tensor:
        return self.rows[self.size - 1]

    def append(self, vector: Tensor) -> None:
        if self.size == len(self.rows):
            grown = torch.empty(2 * len(self.rows), self.rows.shape[1], dtype=self.rows.dtype, device=self.rows.device)
            grown[: self.size] = self.rows
            self.rows = grown
        self.rows[self.size] = vector
        self.size += 1

    def orthogonalise(self, vector: Tensor) -> Tensor:
        """``vector`` minus its projection on the basis, by classical Gram–Schmidt done twice."""
        filled = self.rows[: self.size]
        for _ in range(2):
            vector = vector - filled.T @ (filled @ vector)
        return vector

    def combine(self, coefficients: Tensor) -> Tensor:
        return self.rows[: len(coefficients)].T @ coefficients
