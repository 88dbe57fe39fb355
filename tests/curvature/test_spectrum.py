"""Top-k Lanczos, Hutchinson's trace and stochastic Lanczos quadrature against dense float64 answers."""

from __future__ import annotations

import math

import pytest
import torch

from landscape_probe import params as P
from landscape_probe.curvature.hessian import GradientGraph, rademacher_like
from landscape_probe.curvature.spectrum import smoothed_density, stochastic_lanczos_quadrature, top_eigenpairs
from landscape_probe.curvature.trace import hutchinson_trace
from tests.curvature.test_hessian import dense_hessian, tiny_problem


def symmetric_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    """Q diag(λ) Qᵀ with Q a random orthogonal matrix."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return q @ torch.diag(eigenvalues) @ q.T


def signs(n: int, seed: int) -> torch.Tensor:
    return (2 * torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed)) - 1).double()


def test_top_eigenpairs_of_a_tiny_mlp_match_the_dense_hessian() -> None:
    params, loss_fn = tiny_problem()
    dense = dense_hessian(loss_fn, params)
    values, vectors = torch.linalg.eigh(dense)
    assert float((values[-4:].diff()).min()) > 1e-3  # separated, so eigenvectors are defined up to sign
    graph = GradientGraph.at(loss_fn, params)
    start = P.flatten(rademacher_like(params, 0))
    top = top_eigenpairs(graph.flat_hessian_vector_product, start, k=4, iterations=100, tolerance=1e-10)
    torch.testing.assert_close(top.eigenvalues, values[-4:].flip(0), rtol=0, atol=1e-6)
    for found, exact in zip(top.eigenvectors, vectors[:, -4:].flip(1).T, strict=True):
        assert abs(float(found @ exact)) == pytest.approx(1.0, abs=1e-6)
    actual = torch.stack([(dense @ v - lam * v).norm() for lam, v in zip(top.eigenvalues, top.eigenvectors)])
    torch.testing.assert_close(top.residuals, actual, rtol=1e-3, atol=1e-9)
    assert top.converged and top.products <= start.numel()


def test_top_eigenpairs_converge_in_fewer_products_than_the_dimension() -> None:
    spectrum = torch.cat([torch.tensor([10.0, 9.0, 8.0], dtype=torch.float64),
                          torch.linspace(-1.0, 1.0, 197, dtype=torch.float64)])
    a = symmetric_with_spectrum(spectrum, seed=1)
    top = top_eigenpairs(lambda q: a @ q, signs(200, 0), k=3, iterations=200, tolerance=1e-9)
    torch.testing.assert_close(top.eigenvalues, spectrum[:3], rtol=0, atol=1e-6)
    assert top.converged and top.products < 60


def test_a_start_inside_an_invariant_subspace_restarts_to_find_k_pairs() -> None:
    a = torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, -6.0], dtype=torch.float64))
    start = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64)  # an eigenvector: the space closes at once
    without = top_eigenpairs(lambda q: a @ q, start, k=3, iterations=20)
    assert without.eigenvalues.tolist() == [2.0]
    draws = iter(range(100))
    top = top_eigenpairs(lambda q: a @ q, start, k=3, iterations=20, restart=lambda: signs(5, next(draws)))
    torch.testing.assert_close(top.eigenvalues, torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64), rtol=0, atol=1e-9)


def test_hutchinson_is_within_three_standard_errors_and_its_error_falls_as_one_over_root_samples() -> None:
    a = symmetric_with_spectrum(torch.linspace(-2.0, 5.0, 40, dtype=torch.float64), seed=2)
    exact = float(torch.trace(a))
    off_diagonal = float((a**2).sum() - (torch.diagonal(a) ** 2).sum())
    errors = {}
    for count in (25, 400):
        estimate = hutchinson_trace(lambda z: a @ z, lambda i: signs(40, i), max_samples=count)
        assert len(estimate.samples) == count
        assert abs(estimate.trace - exact) <= 3 * estimate.standard_error
        assert estimate.standard_error == pytest.approx(math.sqrt(2 * off_diagonal / count), rel=0.3)
        errors[count] = estimate.standard_error
    assert 2.5 < errors[25] / errors[400] < 6.0  # √(400/25) = 4


def test_hutchinson_stops_once_its_standard_error_is_within_the_tolerance() -> None:
    params, loss_fn = tiny_problem(seed=2)
    exact = float(torch.trace(dense_hessian(loss_fn, params)))
    graph = GradientGraph.at(loss_fn, params)
    estimate = hutchinson_trace(graph.flat_hessian_vector_product, lambda i: P.flatten(rademacher_like(params, i)),
                                max_samples=5000, tolerance=0.02)
    assert 10 <= len(estimate.samples) < 5000
    assert estimate.standard_error <= 0.02 * abs(estimate.trace)
    assert abs(estimate.trace - exact) <= 3 * estimate.standard_error


def test_quadrature_moments_match_the_dense_spectrum_within_their_monte_carlo_error() -> None:
    params, loss_fn = tiny_problem(seed=1)
    dense = dense_hessian(loss_fn, params)
    n = dense.shape[0]
    graph = GradientGraph.at(loss_fn, params)
    runs = stochastic_lanczos_quadrature(graph.flat_hessian_vector_product,
                                         lambda i: P.flatten(rademacher_like(params, 100 + i)), runs=60, steps=8)
    assert runs.nodes.shape == (60, 8) and runs.products == 480
    torch.testing.assert_close(runs.moment(0), torch.ones(60, dtype=torch.float64), rtol=0, atol=1e-12)
    for power, exact in ((1, float(torch.trace(dense)) / n), (2, float(torch.trace(dense @ dense)) / n)):
        samples = runs.moment(power)
        error = float(samples.std()) / math.sqrt(len(samples))
        assert abs(float(samples.mean()) - exact) <= 3 * error, (power, float(samples.mean()), exact, error)
    # Gauss quadrature of m nodes is exact to degree 2m − 1: each run's moment equals vᵀ H^power v
    v = P.flatten(rademacher_like(params, 100)) / math.sqrt(n)
    assert float(runs.moment(3)[0]) == pytest.approx(float(v @ dense @ dense @ dense @ v), rel=1e-8)


def test_quadrature_of_a_full_krylov_space_is_the_exact_spectrum_and_the_density_integrates_to_one() -> None:
    spectrum = torch.tensor([-1.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    a = symmetric_with_spectrum(spectrum, seed=3)
    runs = stochastic_lanczos_quadrature(lambda q: a @ q, lambda i: signs(4, i), runs=3, steps=10)
    assert runs.nodes.shape == (3, 4)
    for nodes in runs.nodes:
        torch.testing.assert_close(nodes, spectrum, rtol=0, atol=1e-10)
    grid = torch.linspace(-3.0, 5.0, 2001, dtype=torch.float64)
    density = smoothed_density(runs.nodes, runs.weights, grid, width=0.05)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-6)
    assert float(torch.trapezoid(density * grid, grid)) == pytest.approx(float(runs.moment(1).mean()), abs=1e-6)
