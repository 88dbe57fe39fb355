"""The top of a symmetric operator's spectrum, and its whole density, from Lanczos on products ``A q``.

Lanczos (1950) with full reorthogonalisation builds an orthonormal basis
Q_m = [q₁ … q_m] of the Krylov space span{q₁, A q₁, …, A^{m−1} q₁} and the
tridiagonal T_m = Q_mᵀ A Q_m (:mod:`landscape_probe.curvature.lanczos`).

- **Top-k eigenpairs** (:func:`top_eigenpairs`): the k largest (algebraic)
  Ritz values θ_i of T_m = S diag(θ) Sᵀ, with Ritz vectors y_i = Q_m s_i. The
  residual is free: ``||A y_i − θ_i y_i|| = β_m |s_{m,i}|`` (Parlett, *The
  Symmetric Eigenvalue Problem*, 1998, §13-1), and some eigenvalue of A lies
  within it of θ_i, within r²/gap when isolated. Iteration stops when every
  one of the k residuals is at most ``tolerance · max|θ|``. This is what
  hessian-eigenthings' and PyHessian's deflated power iteration compute
  (Yao et al., 2020), with far fewer products.
- **Spectral density** (:func:`stochastic_lanczos_quadrature`): for a unit
  start v, ``vᵀ f(A) v = Σ_j τ_j f(θ_j)`` exactly for polynomials f of degree
  below 2m (Gauss quadrature; Golub & Meurant 2010), θ_j the Ritz values and
  τ_j = s_{1,j}² the squared first components of T_m's eigenvectors. With v a
  normalised Rademacher vector, E[vᵀ f(A) v] = tr f(A) / n, so the averaged
  nodes and weights of several runs estimate the density
  φ(t) = (1/n) Σ_i δ(t − λ_i) (Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl.
  2017; Ghorbani, Krishnan & Xiao, ICML 2019). :func:`smoothed_density` puts a
  Gaussian of width σ on every node to draw it.

Uses ``lanczos._Basis`` and ``lanczos._tridiagonal``, that module's private
helpers, so that both Lanczos codes share one reorthogonalised basis.

Example:
    >>> import torch
    >>> a = torch.diag(torch.tensor([3.0, 1.0, -7.0, 2.0], dtype=torch.float64))
    >>> top = top_eigenpairs(lambda q: a @ q, torch.ones(4, dtype=torch.float64), k=2, iterations=10)
    >>> [round(value, 10) for value in top.eigenvalues.tolist()]
    [3.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape_probe.curvature.lanczos import MatVec, _Basis, _tridiagonal  # private helpers, shared on purpose


@dataclass(frozen=True)
class LanczosRun:
    """One Lanczos run: the basis rows, T_m's diagonal α and off-diagonal β, and β_m (the last residual norm)."""

    basis: _Basis
    alphas: list[float]
    betas: list[float]
    last_beta: float

    def ritz(self) -> tuple[Tensor, Tensor]:
        """T_m's eigenvalues (ascending) and eigenvectors (columns), in float64."""
        return torch.linalg.eigh(_tridiagonal(self.alphas, self.betas))


def lanczos_run(
    matvec: MatVec,
    start: Tensor,
    steps: int,
    *,
    converged: Callable[[LanczosRun], bool] | None = None,
    restart: Callable[[], Tensor] | None = None,
) -> LanczosRun:
    """Up to ``steps`` Lanczos products from ``start``, every new vector orthogonalised against all earlier ones.

    Args:
        matvec: ``q ↦ A q`` for a symmetric A, on flat vectors like ``start``.
        start: the first Krylov vector (any positive norm).
        steps: the most products.
        converged: asked after each product; True stops the run.
        restart: a fresh random vector for when the Krylov space closes (an invariant subspace); its
            part orthogonal to the basis continues the run with β = 0. None: the run ends there.
    """
    if start.ndim != 1 or not float(start.norm()) > 0:
        raise ValueError("Lanczos needs a flat start vector with a positive, finite norm.")
    basis = _Basis(start / start.norm())
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(start.dtype).eps
    scale = 0.0
    while True:
        product = matvec(basis.last())
        alphas.append(float(basis.last() @ product))
        product = basis.orthogonalise(product)
        beta = float(product.norm())
        scale = max(scale, abs(alphas[-1]), beta)
        run = LanczosRun(basis, alphas, betas, beta)
        if not all(abs(v) < float("inf") for v in (alphas[-1], beta)):
            return LanczosRun(basis, alphas, betas, float("nan"))
        if len(alphas) >= min(steps, start.numel()) or (converged is not None and converged(run)):
            return run
        if beta <= 8 * eps * scale:
            fresh = None if restart is None else basis.orthogonalise(restart())
            if fresh is None or not float(fresh.norm()) > eps**0.5:
                return LanczosRun(basis, alphas, betas, 0.0)
            product, beta = fresh, 0.0
        betas.append(beta)
        basis.append(product / float(product.norm()))


@dataclass(frozen=True)
class TopEigenpairs:
    """The k largest eigenvalues (descending), unit eigenvectors (rows), residual norms and products spent."""

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    products: int
    converged: bool


def top_eigenpairs(
    matvec: MatVec,
    start: Tensor,
    *,
    k: int,
    iterations: int = 100,
    tolerance: float = 1e-6,
    restart: Callable[[], Tensor] | None = None,
) -> TopEigenpairs:
    """The k largest (algebraic) eigenvalues of a symmetric A and their eigenvectors, by Lanczos.

    Args:
        matvec: ``q ↦ A q`` on flat vectors like ``start``.
        start: the first Krylov vector.
        k: how many eigenpairs (at most the dimension).
        iterations: the most products.
        tolerance: stop when every residual ``||A y_i − θ_i y_i||`` is at most this times ``max|θ|``.
        restart: as in :func:`lanczos_run`; needed to find k pairs from a start inside a smaller invariant subspace.

    Returns:
        :class:`TopEigenpairs`, the eigenvalues in float64, the eigenvectors in ``start``'s dtype.
    """
    k = min(k, start.numel())

    def residuals(run: LanczosRun) -> Tensor:
        values, vectors = run.ritz()
        return run.last_beta * vectors[-1, -k:].abs().flip(0), values

    def done(run: LanczosRun) -> bool:
        if len(run.alphas) < k:
            return False
        norms, values = residuals(run)
        return bool((norms <= tolerance * values.abs().max().clamp_min(1e-300)).all())

    run = lanczos_run(matvec, start, max(iterations, k), converged=done, restart=restart)
    values, vectors = run.ritz()
    found = min(k, len(values))
    top = vectors[:, -found:].flip(1)
    eigenvectors = torch.stack([run.basis.combine(s.to(start.dtype)) for s in top.T])
    eigenvectors = eigenvectors / eigenvectors.norm(dim=1, keepdim=True)
    norms = run.last_beta * top[-1].abs() if found else torch.zeros(0, dtype=torch.float64)
    return TopEigenpairs(values[-found:].flip(0), eigenvectors, norms, len(run.alphas), done(run) or found == 0)


@dataclass(frozen=True)
class QuadratureRuns:
    """Stochastic Lanczos quadrature: per run, the Ritz nodes θ_j and weights τ_j (NaN / 0 past a run's end)."""

    nodes: Tensor
    weights: Tensor
    products: int

    def moment(self, power: int) -> Tensor:
        """Per run, ``Σ_j τ_j θ_j^power``: an unbiased sample of tr(A^power)/n for power < 2m."""
        return torch.where(self.weights > 0, self.weights * self.nodes.nan_to_num(0.0) ** power, 0.0).sum(dim=1)


def stochastic_lanczos_quadrature(
    matvec: MatVec,
    draw_start: Callable[[int], Tensor],
    *,
    runs: int,
    steps: int,
) -> QuadratureRuns:
    """Nodes and weights of the spectral density of A from ``runs`` Lanczos runs of ``steps`` products.

    Args:
        matvec: ``q ↦ A q``.
        draw_start: run index → its start vector (Rademacher, for E[vᵀ f(A) v] / ||v||² = tr f(A) / n).
        runs: how many independent starts are averaged.
        steps: Lanczos products per run (fewer when the Krylov space closes: the quadrature is then exact).
    """
    rows: list[tuple[Tensor, Tensor]] = []
    products = 0
    for index in range(runs):
        run = lanczos_run(matvec, draw_start(index), steps)
        values, vectors = run.ritz()
        rows.append((values, vectors[0] ** 2))
        products += len(run.alphas)
    width = max(len(values) for values, _ in rows)
    nodes = torch.full((runs, width), float("nan"), dtype=torch.float64)
    weights = torch.zeros((runs, width), dtype=torch.float64)
    for row, (values, first) in enumerate(rows):
        nodes[row, : len(values)], weights[row, : len(values)] = values, first
    return QuadratureRuns(nodes, weights, products)


def smoothed_density(nodes: Tensor, weights: Tensor, grid: Tensor, width: float) -> Tensor:
    """φ_σ(t) = (1/R) Σ_runs Σ_j τ_j · exp(−(t − θ_j)² / 2σ²) / (σ √(2π)) on ``grid`` (integrates to ≈ 1)."""
    used = weights > 0
    theta, tau = nodes[used], weights[used] / nodes.shape[0]
    gaussians = torch.exp(-0.5 * ((grid[:, None] - theta[None, :]) / width) ** 2) / (width * (2 * torch.pi) ** 0.5)
    return gaussians @ tau
