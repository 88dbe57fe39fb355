"""Curvature against the dense float64 Hessian of a tiny MLP."""

from __future__ import annotations

import pytest
import torch

from landscape_probe import params as P
from landscape_probe.curvature.hessian import (
    GradientGraph,
    directional_curvature,
    gaussian_like,
    hessian_trace,
    hessian_vector_product,
    hessian_vector_product_forward_over_reverse,
    rademacher_like,
    top_eigenpair,
    top_hessian_eigenvalue,
)


def tiny_problem(seed: int = 0) -> tuple[dict[str, torch.Tensor], object]:
    """A 3-4-2 tanh MLP with MSE on six examples, in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    params = {
        "w1": torch.randn(4, 3, generator=g, dtype=torch.float64),
        "b1": torch.randn(4, generator=g, dtype=torch.float64),
        "w2": torch.randn(2, 4, generator=g, dtype=torch.float64),
    }

    def loss_fn(p: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = torch.tanh(x @ p["w1"].T + p["b1"])
        return torch.mean((hidden @ p["w2"].T - y) ** 2)

    return params, loss_fn


def dense_hessian(loss_fn, params) -> torch.Tensor:
    return torch.func.hessian(lambda flat: loss_fn(P.unflatten(flat, params)))(P.flatten(params))


@pytest.mark.parametrize("hvp", [hessian_vector_product, hessian_vector_product_forward_over_reverse])
def test_hvp_matches_dense_hessian(hvp) -> None:
    params, loss_fn = tiny_problem()
    v = gaussian_like(params, seed=3)
    expected = dense_hessian(loss_fn, params) @ P.flatten(v)
    torch.testing.assert_close(P.flatten(hvp(loss_fn, params, v)), expected, rtol=1e-10, atol=1e-12)


def test_graph_reusing_hvp_equals_double_backward_and_finite_differences() -> None:
    params, loss_fn = tiny_problem(seed=4)
    graph = GradientGraph.at(loss_fn, params)
    gradient = torch.func.grad(loss_fn)
    step = 1e-5
    for seed in (3, 4):  # the second product runs on the graph the first one kept
        v = gaussian_like(params, seed=seed)
        product = graph.hessian_vector_product(v)
        once = hessian_vector_product(loss_fn, params, v)
        torch.testing.assert_close(P.flatten(product), P.flatten(once), rtol=1e-12, atol=1e-13)
        central = P.scale(
            1 / (2 * step), P.sub(gradient(P.axpy(step, v, params)), gradient(P.axpy(-step, v, params)))
        )
        torch.testing.assert_close(P.flatten(product), P.flatten(central), rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(P.flatten(graph.gradient), P.flatten(gradient(params)), rtol=1e-12, atol=1e-14)
    assert float(graph.loss) == pytest.approx(float(loss_fn(params)), rel=1e-14)


def test_products_accumulate_into_the_given_buffer() -> None:
    params, loss_fn = tiny_problem(seed=5)
    hessian = dense_hessian(loss_fn, params)
    graph = GradientGraph.at(loss_fn, params)
    v = P.flatten(gaussian_like(params, seed=6))
    already = torch.arange(v.numel(), dtype=torch.float64)
    out = already.clone()
    assert graph.add_hessian_vector_product(v, out) is out
    torch.testing.assert_close(out, already + hessian @ v, rtol=1e-12, atol=1e-13)
    assert graph.flat_hessian_vector_product(v, out=out) is out  # overwritten, not added to
    torch.testing.assert_close(out, hessian @ v, rtol=1e-12, atol=1e-13)
    assert torch.equal(out, graph.flat_hessian_vector_product(v))  # the same numbers as into a fresh tensor
    assert all(leaf.grad is None for leaf in graph.leaves.values())  # the buffer was lent, not left behind


def test_products_equal_backward_from_the_gradient_and_do_not_import_sympy() -> None:
    # the product hands v to the graph through a scalar root (curvature/cotangent.py): the same as handing
    # torch v as the gradient's gradient, which would import sympy (0.8 s) for its shape check on the first call
    script = """
import sys, torch
from landscape_probe import params as P
from landscape_probe.curvature.hessian import GradientGraph, gaussian_like
torch.manual_seed(0)
params = {"a": torch.randn(4, 3, dtype=torch.float64), "b": torch.randn(3, dtype=torch.float64)}
loss_fn = lambda p: torch.tanh(torch.randn(5, 4, dtype=torch.float64) @ p["a"] + p["b"]).pow(3).sum()
graph = GradientGraph.at(loss_fn, params)
v = P.flatten(gaussian_like(params, seed=1))
product = graph.flat_hessian_vector_product(v)
assert "sympy" not in sys.modules and "torch.fx.experimental.symbolic_shapes" not in sys.modules
parts = [part for _, part in graph._differentiable]
expected = torch.autograd.grad(parts, list(graph.leaves.values()), list(P.unflatten(v, params).values()))
assert torch.equal(product, P.flatten(dict(zip(params, expected)))), "not bit for bit"
print("ok")
"""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_top_eigenvalue_without_the_basis_matches_the_full_basis_and_dense() -> None:
    params, loss_fn = tiny_problem(seed=2)
    eigenvalues = torch.linalg.eigvalsh(dense_hessian(loss_fn, params))
    graph = GradientGraph.at(loss_fn, params)
    u = P.flatten(gaussian_like(params, seed=9))
    full = top_eigenpair(graph, iterations=100, tolerance=1e-12, start=u)
    short = top_eigenpair(graph, iterations=100, tolerance=1e-12, start=u, keep_basis=False)
    assert short.eigenvector is None and full.eigenvector is not None
    assert short.eigenvalue == pytest.approx(float(eigenvalues[eigenvalues.abs().argmax()]), rel=1e-9)
    assert short.lanczos.start_rayleigh_quotient == full.lanczos.start_rayleigh_quotient  # the same first product


def test_top_eigenpair_from_a_given_start_gives_its_curvature() -> None:
    params, loss_fn = tiny_problem(seed=2)
    hessian = dense_hessian(loss_fn, params)
    u = gaussian_like(params, seed=9)
    top = top_eigenpair(GradientGraph.at(loss_fn, params), iterations=100, tolerance=1e-12, start=u)
    flat = P.flatten(u)
    assert top.lanczos.start_rayleigh_quotient * float(flat @ flat) == pytest.approx(float(flat @ hessian @ flat), rel=1e-10)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert top.eigenvalue == pytest.approx(float(eigenvalues[eigenvalues.abs().argmax()]), rel=1e-9)


def test_hvp_of_linear_loss_is_zero_and_works_under_no_grad() -> None:
    params = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    with torch.no_grad():
        product = hessian_vector_product_forward_over_reverse(lambda p: p["w"].sum(), params, params)
        quadratic = hessian_vector_product(lambda p: (p["w"] ** 2).sum(), params, params)
        kept = GradientGraph.at(lambda p: p["w"].sum(), params).hessian_vector_product(params)
        kept_quadratic = GradientGraph.at(lambda p: (p["w"] ** 2).sum(), params).hessian_vector_product(params)
        flat = top_hessian_eigenvalue(lambda p: p["w"].sum(), params)
    assert torch.equal(product["w"], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(kept["w"], torch.zeros(2, dtype=torch.float64)) and flat[0] == 0.0
    torch.testing.assert_close(quadratic["w"], 2 * params["w"])
    torch.testing.assert_close(kept_quadratic["w"], 2 * params["w"])


def test_top_eigenvalue_and_eigenvector_match_dense() -> None:
    params, loss_fn = tiny_problem(seed=2)
    eigenvalues = torch.linalg.eigvalsh(dense_hessian(loss_fn, params))
    by_magnitude = eigenvalues[eigenvalues.abs().argsort(descending=True)]
    assert by_magnitude[1].abs() < 0.9 * by_magnitude[0].abs(), "test problem needs a spectral gap"
    # the eigenvector's residual is about sqrt(tolerance · gap · |λ|): a tight tolerance for a 1e-6 residual
    value, vector = top_hessian_eigenvalue(loss_fn, params, iterations=2000, tolerance=1e-14, seed=1)
    assert value == pytest.approx(float(by_magnitude[0]), rel=1e-6)
    assert float(P.norm(vector)) == pytest.approx(1.0, rel=1e-12)
    hv = dense_hessian(loss_fn, params) @ P.flatten(vector)
    torch.testing.assert_close(hv, value * P.flatten(vector), rtol=0, atol=1e-6 * abs(value))


def test_top_eigenvalue_keeps_negative_sign() -> None:
    a = torch.diag(torch.tensor([1.0, -5.0, 2.0], dtype=torch.float64))
    value, vector = top_hessian_eigenvalue(
        lambda p: 0.5 * p["w"] @ a @ p["w"], {"w": torch.ones(3, dtype=torch.float64)}, iterations=500, tolerance=1e-10
    )
    assert value == pytest.approx(-5.0, rel=1e-9)
    assert abs(float(vector["w"][1])) == pytest.approx(1.0, rel=1e-9)


def test_top_eigenvalue_is_deterministic_in_seed() -> None:
    params, loss_fn = tiny_problem()
    first = top_hessian_eigenvalue(loss_fn, params, iterations=5, seed=7)
    second = top_hessian_eigenvalue(loss_fn, params, iterations=5, seed=7)
    assert first[0] == second[0]
    assert torch.equal(P.flatten(first[1]), P.flatten(second[1]))


def test_hutchinson_converges_to_exact_trace() -> None:
    params, loss_fn = tiny_problem()
    hessian = dense_hessian(loss_fn, params)
    exact = float(torch.trace(hessian))
    samples = 400
    off_diagonal = hessian - torch.diag(torch.diag(hessian))
    standard_error = float(torch.sqrt(2 * (off_diagonal**2).sum() / samples))
    estimate = hessian_trace(loss_fn, params, samples=samples, seed=0)
    assert abs(estimate - exact) < 4 * standard_error


def test_directional_curvature_matches_dense() -> None:
    params, loss_fn = tiny_problem(seed=2)
    d = gaussian_like(params, seed=5)
    flat = P.flatten(d)
    expected = float(flat @ dense_hessian(loss_fn, params) @ flat)
    assert directional_curvature(loss_fn, params, d) == pytest.approx(expected, rel=1e-10)


def test_random_vectors_have_the_right_law_and_shapes() -> None:
    like = {"a": torch.zeros(200, 50, dtype=torch.float32), "b": torch.zeros(7, dtype=torch.float64)}
    z = rademacher_like(like, seed=0)
    assert set(z["a"].unique().tolist()) == {-1.0, 1.0} and z["b"].dtype == torch.float64
    g = gaussian_like(like, seed=0)
    assert abs(float(g["a"].mean())) < 0.02 and float(g["a"].std()) == pytest.approx(1.0, abs=0.02)
    assert g["a"].shape == (200, 50) and g["b"].dtype == torch.float64
