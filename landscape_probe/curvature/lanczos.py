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
Memory is the k basis vectors.

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

AddMatVec = Callable[[Tensor, Tensor], object]
"""``(q, out) ↦ out += A q`` in place, for a symmetric A, on flat vectors."""


BASIS_BUDGET_BYTES = 2**30
"""Lanczos keeps its whole basis (and gives an eigenvector) while ``iterations`` vectors fit in this many bytes."""


def basis_fits(vector: Tensor, iterations: int, budget: int = BASIS_BUDGET_BYTES) -> bool:
    """Whether ``iterations`` vectors like ``vector`` fit in ``budget`` bytes (the full-basis Lanczos's memory)."""
    return iterations * vector.numel() * vector.element_size() <= budget



@dataclass(frozen=True)
class LanczosResult:
    """The eigenpair found and what it cost.

    Attributes:
        eigenvalue: the Ritz value of largest magnitude, sign kept.
        eigenvector: its unit Ritz vector (flat, like the start); None from :func:`largest_magnitude_eigenvalue`.
        products: matrix-vector products spent.
        converged: whether the stopping rule held (else the iterations ran out).
        start_rayleigh_quotient: ``q₁ᵀ A q₁`` of the normalised start, α₁, free from the first product.
    """

    eigenvalue: float
    eigenvector: Tensor | None
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
        tolerance: stop when the estimate's relative error, by either rule above, is at most this.
        restart: a new random vector, drawn when the Krylov space closes before the
            estimate has settled (a start inside an invariant subspace); None: stop there.

    Returns:
        The :class:`LanczosResult`. A non-finite product gives a NaN eigenvalue.
    """
    if start.ndim != 1 or not 0 < float(start.norm()) < float("inf"):
        raise ValueError("Lanczos needs a flat start vector with a positive, finite norm.")
    basis = _Basis(start / start.norm())
    alphas: list[float] = []
    betas: list[float] = []
    estimate, ritz = float("nan"), torch.ones(1, dtype=torch.float64)
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
        estimate, ritz, closed, converged = _judge(alphas, betas, beta, estimate, restarted, eps, tolerance)
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


def largest_magnitude_eigenvalue(
    add_product: AddMatVec,
    start: Tensor,
    *,
    iterations: int = 50,
    tolerance: float = 1e-4,
    work: tuple[Tensor, Tensor] | None = None,
) -> LanczosResult:
    """The eigenvalue of largest magnitude of a symmetric A by Lanczos's three-term recurrence: two vectors in memory.

    The same iteration and stopping rules as :func:`largest_magnitude_eigenpair`,
    for operators too large to keep the basis (k vectors of the size of the
    model: 50 × 0.4 GB at 100M parameters). Only q_{j−1} and q_j are kept, in
    two buffers (Paige's variant: ``w = A q_j − β_{j−1} q_{j−1}`` is accumulated
    into the buffer that held q_{j−1}, then ``α_j = q_jᵀ w``,
    ``w ← w − α_j q_j``, ``q_{j+1} = w / β_j``), each new vector
    orthogonalised against q_j once more. Without reorthogonalisation against
    the older vectors they lose orthogonality once a Ritz value converges,
    which repeats that value ("ghosts") but leaves the extreme Ritz value as
    accurate (Paige 1976; Parlett 1998, §13-4), so the eigenvalue agrees with
    the full-basis one to within the tolerance. No eigenvector is formed (it
    would need the basis, or a second pass of products); ``eigenvector`` is
    None. A closed Krylov space (β ≈ 0) ends the iteration: with no basis to
    orthogonalise a fresh start against, there is no restart.

    Args:
        add_product: ``(q, out) ↦ out += A q``, in place, on flat vectors of ``start``'s shape.
        start: the first Krylov vector (any non-zero norm); not modified, unless it is ``work[0]``.
        iterations, tolerance: as in :func:`largest_magnitude_eigenpair`.
        work: the two buffers (like ``start``) to run in; none: two new ones. The first may be ``start`` itself,
            which is then overwritten (its memory serves the iteration); the second may not.

    Returns:
        The :class:`LanczosResult` with ``eigenvector=None``.
    """
    if start.ndim != 1 or not 0 < float(start.norm()) < float("inf"):
        raise ValueError("Lanczos needs a flat start vector with a positive, finite norm.")
    current, other = (torch.empty_like(start), torch.empty_like(start)) if work is None else work
    if other.data_ptr() == start.data_ptr():
        raise ValueError("Lanczos's second work buffer cannot be its start vector (the first one can).")
    torch.div(start, start.norm(), out=current)
    other.zero_()  # q_{j−1}, then w, then q_{j+1}: the second and last buffer
    alphas: list[float] = []
    betas: list[float] = []
    estimate, converged, beta = float("nan"), False, 0.0
    eps = torch.finfo(start.dtype).eps
    for step in range(max(iterations, 1)):
        other.mul_(-beta)
        add_product(current, other)
        quotient = float(current @ other)  # q_jᵀ A q_j − β q_jᵀ q_{j−1}; at j = 1 exactly q₁ᵀ A q₁
        first_quotient = quotient if step == 0 else first_quotient  # α₁ as the full-basis code has it
        other.add_(current, alpha=-quotient)
        correction = float(current @ other)  # the local reorthogonalisation
        other.add_(current, alpha=-correction)
        alpha, beta = quotient + correction, float(other.norm())
        alphas.append(alpha)
        if not (abs(alpha) < float("inf") and beta < float("inf")):
            return LanczosResult(float("nan"), None, step + 1, False, first_quotient)
        estimate, _, closed, converged = _judge(alphas, betas, beta, estimate, False, eps, tolerance)
        if converged or closed or step == iterations - 1:
            converged = converged or closed
            break
        betas.append(beta)
        other.div_(beta)
        current, other = other, current
    return LanczosResult(estimate, None, len(alphas), converged, first_quotient)


def _judge(
    alphas: list[float], betas: list[float], beta: float, previous: float, restarted: bool, eps: float,
    tolerance: float,
) -> tuple[float, Tensor, bool, bool]:
    """The Ritz value of largest magnitude of T_k, its vector, whether the space closed, whether it has converged."""
    values, vectors = torch.linalg.eigh(_tridiagonal(alphas, betas))
    top = 0 if abs(float(values[0])) > abs(float(values[-1])) else len(values) - 1
    estimate, ritz = float(values[top]), vectors[:, top]
    closed = beta <= 8 * eps * float(values.abs().max())
    converged = abs(estimate - previous) <= tolerance * abs(estimate) or (
        not (closed or restarted) and _kato_temple_estimate(values, top, beta * abs(float(ritz[-1])))
        <= tolerance * abs(estimate)
    )
    return estimate, ritz, closed, converged


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
    """Orthonormal vectors q₁ … q_k, kept one by one: memory is exactly k vectors, never a preallocated block."""

    def __init__(self, first: Tensor) -> None:
        self.vectors = [first]

    def last(self) -> Tensor:
        return self.vectors[-1]

    def append(self, vector: Tensor) -> None:
        self.vectors.append(vector)

    def orthogonalise(self, vector: Tensor) -> Tensor:
        """``vector`` minus its projection on the basis, by modified Gram–Schmidt done twice (no host sync)."""
        vector = vector.clone()
        for _ in range(2):
            for q in self.vectors:
                vector.sub_(q * (q @ vector))
        return vector

    def combine(self, coefficients: Tensor) -> Tensor:
        combined = torch.zeros_like(self.vectors[0])
        for q, c in zip(self.vectors, coefficients):
            combined.add_(q, alpha=float(c))
        return combined
