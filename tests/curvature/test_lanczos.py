"""Lanczos against matrices whose spectrum is known."""

from __future__ import annotations

import math

import pytest
import torch

from landscape_probe.curvature.lanczos import basis_fits, largest_magnitude_eigenpair, largest_magnitude_eigenvalue


def known_spectrum(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random rotation of diag(1, λ₂ … λ_n), λ₂ … λ_n evenly spread over [0, ½]: gap ratio γ = 1."""
    g = torch.Generator().manual_seed(seed)
    eigenvalues = torch.cat([torch.ones(1, dtype=torch.float64), torch.linspace(0.5, 0.0, n - 1, dtype=torch.float64)])
    rotation, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return rotation @ torch.diag(eigenvalues) @ rotation.T, rotation


def kaniel_paige_saad_products(start: torch.Tensor, top_vector: torch.Tensor, error: float) -> int:
    """The fewest products k at which the bound (λ₁ − λ_n)(tan φ / T_{k−1}(1 + 2γ))² ≤ error, with λ₁ − λ_n = 1, γ = 1."""
    cosine = abs(float(start @ top_vector)) / float(start.norm())
    tangent = math.sqrt(1 - cosine**2) / cosine
    k = 1
    while (tangent / math.cosh((k - 1) * math.acosh(3.0))) ** 2 > error:
        k += 1
    return k


def test_reaches_the_kaniel_paige_saad_bound_where_power_iteration_could_not() -> None:
    a, rotation = known_spectrum()
    start = torch.randn(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = kaniel_paige_saad_products(start, rotation[:, 0], error=1e-10)
    assert 0.25**k > 1e3 * 1e-10, "power iteration, error ~ tan²φ (λ₂/λ₁)^{2k}, would be far off after k products"
    result = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=k, tolerance=0.0)
    assert result.products == k
    assert 0 <= 1.0 - result.eigenvalue <= 1e-10
    stopped = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=100, tolerance=1e-10)
    assert stopped.converged and stopped.products <= k + 1
    assert abs(stopped.eigenvalue - 1.0) <= 1e-10
    assert abs(float(stopped.eigenvector @ rotation[:, 0])) == pytest.approx(1.0, abs=1e-8)


def test_negative_extreme_keeps_its_sign_and_the_start_curvature_is_alpha_one() -> None:
    a, rotation = known_spectrum(n=50, seed=2)
    shifted = 0.3 * torch.eye(50, dtype=torch.float64) - 2 * a  # eigenvalues −1.7 and [−0.7, 0.3]
    start = torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = largest_magnitude_eigenpair(lambda q: shifted @ q, start, iterations=60, tolerance=1e-12)
    assert result.eigenvalue == pytest.approx(-1.7, rel=1e-10)
    unit = start / start.norm()
    assert result.start_rayleigh_quotient == pytest.approx(float(unit @ shifted @ unit), rel=1e-12)


def test_a_start_inside_an_invariant_subspace_restarts_and_finds_the_top() -> None:
    a = torch.diag(torch.tensor([1.0, 2.0, 10.0, -3.0], dtype=torch.float64))
    start = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    closed = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=20, tolerance=1e-12)
    assert closed.converged and closed.eigenvalue == pytest.approx(2.0, rel=1e-12)
    draws = iter(torch.tensor([[0.3, -0.2, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64))
    restarted = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=20, tolerance=1e-12,
                                            restart=lambda: next(draws))
    assert restarted.converged and restarted.eigenvalue == pytest.approx(10.0, rel=1e-12)
    assert abs(float(restarted.eigenvector[2])) == pytest.approx(1.0, rel=1e-10)


def test_zero_and_non_finite_operators() -> None:
    zero = largest_magnitude_eigenpair(lambda q: torch.zeros_like(q), torch.ones(3), iterations=5)
    assert zero.eigenvalue == 0.0 and zero.converged
    broken = largest_magnitude_eigenpair(lambda q: q * float("nan"), torch.ones(3), iterations=5)
    assert math.isnan(broken.eigenvalue) and not broken.converged
    for start in (torch.zeros(3), torch.tensor([1.0, float("inf"), 0.0])):
        with pytest.raises(ValueError):
            largest_magnitude_eigenpair(lambda q: q, start)


def adding(a: torch.Tensor, buffers: set[int] | None = None):
    """``(q, out) ↦ out += A q``, noting every buffer it is handed."""

    def add_product(q: torch.Tensor, out: torch.Tensor) -> None:
        if buffers is not None:
            buffers.update({q.data_ptr(), out.data_ptr()})
        out.add_(a @ q)

    return add_product


def test_three_term_recurrence_reaches_the_same_bound_in_two_vectors() -> None:
    a, rotation = known_spectrum()
    start = torch.randn(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = kaniel_paige_saad_products(start, rotation[:, 0], error=1e-10)
    buffers: set[int] = set()
    result = largest_magnitude_eigenvalue(adding(a, buffers), start, iterations=k, tolerance=0.0)
    assert result.products == k and result.eigenvector is None
    assert 0 <= 1.0 - result.eigenvalue <= 1e-10
    assert len(buffers) == 2, "only q_j and the buffer for q_{j-1}, w and q_{j+1}"
    stopped = largest_magnitude_eigenvalue(adding(a), start, iterations=100, tolerance=1e-10)
    assert stopped.converged and stopped.products <= k + 1


def test_three_term_recurrence_over_a_long_run_finds_no_false_eigenvalue() -> None:
    """λ₂ = 0.99 λ₁: about 90 products, long after the other end of the spectrum (−0.5) has converged, which
    is when the basis loses orthogonality without reorthogonalisation; λ₁ still comes out as the full basis has it."""
    g = torch.Generator().manual_seed(3)
    eigenvalues = torch.cat([torch.ones(1, dtype=torch.float64), torch.linspace(0.99, -0.5, 299, dtype=torch.float64)])
    rotation, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    a = rotation @ torch.diag(eigenvalues) @ rotation.T
    start = torch.randn(300, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    short = largest_magnitude_eigenvalue(adding(a), start, iterations=300, tolerance=0.0)
    full = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=300, tolerance=0.0)
    assert short.products > 60 and short.products == full.products
    assert short.eigenvalue == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_term_recurrence_agrees_with_the_full_basis(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(80, 80, generator=g, dtype=torch.float64)
    a = b + b.T
    start = torch.randn(80, generator=g, dtype=torch.float64)
    full = largest_magnitude_eigenpair(lambda q: a @ q, start, iterations=80, tolerance=1e-8)
    short = largest_magnitude_eigenvalue(adding(a), start, iterations=80, tolerance=1e-8)
    exact = torch.linalg.eigvalsh(a)
    assert short.eigenvalue == pytest.approx(float(exact[exact.abs().argmax()]), rel=1e-7)
    assert short.eigenvalue == pytest.approx(full.eigenvalue, rel=1e-7)
    assert short.start_rayleigh_quotient == full.start_rayleigh_quotient
    negative = largest_magnitude_eigenvalue(adding(torch.diag(torch.tensor([3.0, 1.0, -7.0, 2.0], dtype=torch.float64))),
                                            torch.ones(4, dtype=torch.float64), iterations=10)
    assert negative.eigenvalue == pytest.approx(-7.0, rel=1e-12)


def test_the_basis_is_kept_while_it_fits_the_budget() -> None:
    vector = torch.zeros(1000, dtype=torch.float32)
    assert basis_fits(vector, 50, budget=50 * 4000) and not basis_fits(vector, 51, budget=50 * 4000)
    assert not basis_fits(torch.zeros(1000, dtype=torch.float64), 50, budget=50 * 4000)
