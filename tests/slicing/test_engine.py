"""The slicing engine against closed forms, finite differences and float64 plain loops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.slicing.config import SliceConfig, log_scales
from landscape_probe.slicing.engine import run_slice

SCALES = (1e-3, 1e-2, 1e-1, 0.5, 2.0)


def f64_config(**changes) -> SliceConfig:
    settings = dict(scales=SCALES, device="cpu", dtype="float64", power_iterations=300, power_tolerance=1e-10)
    settings.update(changes)
    return SliceConfig(**settings)


def small_mlp(activation: type[nn.Module] = nn.Tanh, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), activation(), nn.Linear(7, 6), activation(), nn.Linear(6, 3)).double()


def class_data(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=generator, dtype=torch.float64), torch.randint(0, 3, (n,), generator=generator)


def plain_gradient(model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Outputs, loss and gradient over ``names``, with loss.backward() on the module itself."""
    model.zero_grad()
    outputs = model(x)
    loss = F.cross_entropy(outputs, y)
    loss.backward()
    named = dict(model.named_parameters())
    return outputs.detach(), loss.detach(), torch.cat([named[n].grad.reshape(-1) for n in names])


def test_linear_mse_gradient_change_is_hessian_times_step():
    torch.manual_seed(3)
    n, d, k = 20, 4, 2
    model = nn.Linear(d, k, bias=False).double()
    x, y = torch.randn(n, d, dtype=torch.float64), torch.randn(n, k, dtype=torch.float64)
    result = run_slice(model, x, y, "mse", f64_config(scaling="global", power_iterations=100))

    X, Y, W = x.numpy(), y.numpy(), model.weight.detach().numpy()
    g0 = 2.0 / (n * k) * (X @ W.T - Y).T @ X
    u = -g0 / np.linalg.norm(g0)
    gram = 2.0 / (n * k) * X.T @ X
    for i, t in enumerate(SCALES):
        expected_gradient = np.linalg.norm(t * u @ gram) / np.linalg.norm(g0)
        expected_function = np.linalg.norm(X @ (t * u).T) / np.linalg.norm(X @ W.T)
        assert result.whole.relative_gradient_change[i] == pytest.approx(expected_gradient, rel=1e-9)
        assert result.whole.relative_function_change[i] == pytest.approx(expected_function, rel=1e-9)
    assert result.whole.lambda_max == pytest.approx(np.linalg.eigvalsh(gram).max(), rel=1e-8)
    assert result.whole.step_norm == pytest.approx(np.array(SCALES), rel=1e-12)
    # the loss is quadratic, so the Taylor model is exact
    np.testing.assert_allclose(result.whole.taylor_loss_model, result.whole.loss, rtol=1e-9)


def scalar_network(a: float, b: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.fill_(a)
        model[1].weight.fill_(b)
    return model


def test_scalar_network_aligned_steps_match_deep_relative_trust():
    a, b = 0.7, -1.3
    x = torch.tensor([[1.0], [2.0], [-0.5]], dtype=torch.float64)
    y = torch.zeros(3, 1, dtype=torch.float64)
    result = run_slice(
        scalar_network(a, b), x, y, "mse",
        f64_config(direction="checkpoint:twice.pt", scaling="relative"),
        other=scalar_network(2 * a, 2 * b),
    )
    t = np.array(SCALES)
    np.testing.assert_allclose(result.whole.relative_function_change, (1 + t) ** 2 - 1, rtol=1e-12)
    np.testing.assert_allclose(result.whole.drt_prediction, (1 + t) ** 2 - 1, rtol=1e-12)
    np.testing.assert_allclose(result.whole.kappa, np.stack([t, t], axis=1), rtol=1e-12)


def test_scalar_network_gradient_direction_closed_form():
    a, b = 0.7, 1.3
    x = torch.tensor([[1.0], [2.0], [-0.5]], dtype=torch.float64)
    y = torch.tensor([[2.0], [1.0], [0.5]], dtype=torch.float64)
    result = run_slice(scalar_network(a, b), x, y, "mse", f64_config())
    X, Y = x.numpy().ravel(), y.numpy().ravel()
    residual = a * b * X - Y
    grad_a, grad_b = np.mean(2 * residual * b * X), np.mean(2 * residual * a * X)
    t = np.array(SCALES)
    # relative scaling: each weight moves by t·|w| against its gradient's sign
    a_t = a - t * abs(a) * np.sign(grad_a)
    b_t = b - t * abs(b) * np.sign(grad_b)
    np.testing.assert_allclose(result.whole.relative_function_change, np.abs(a_t * b_t - a * b) / abs(a * b), rtol=1e-12)
    residual_t = a_t[:, None] * b_t[:, None] * X - Y
    grad_a_t = np.mean(2 * residual_t * b_t[:, None] * X, axis=1)
    grad_b_t = np.mean(2 * residual_t * a_t[:, None] * X, axis=1)
    expected = np.hypot(grad_a_t - grad_a, grad_b_t - grad_b) / np.hypot(grad_a, grad_b)
    np.testing.assert_allclose(result.whole.relative_gradient_change, expected, rtol=1e-10)


def plain_sweep(
    model: nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor, scales, unit: dict[str, torch.Tensor]
) -> dict[str, np.ndarray]:
    """Every measured quantity along W + t·unit by a plain loop: a deep copy per point and loss.backward()."""
    outputs0, _, g0 = plain_gradient(model, names, x, y)
    first = dict(model.named_parameters())[names[0]].numel()
    rows = []
    for t in scales:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for name, param in moved.named_parameters():
                if name in names:
                    param.add_(t * unit[name])
        outputs, loss, g = plain_gradient(moved, names, x, y)
        p0, pt = torch.softmax(outputs0, 1), torch.softmax(outputs, 1)
        rows.append({
            "relative_function_change": float((outputs - outputs0).norm() / outputs0.norm()),
            "relative_gradient_change": float((g - g0).norm() / g0.norm()),
            "first_layer_gradient_change": float((g - g0)[:first].norm() / g0[:first].norm()),
            "loss": float(loss),
            "kl_divergence": float((p0 * (p0.log() - pt.log())).sum(1).mean()),
            "accuracy": float((outputs.argmax(1) == y).double().mean()),
        })
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def descent_unit(model: nn.Module, names: list[str], x, y, scaling: str = "relative") -> dict[str, torch.Tensor]:
    """The unit step along −g: each layer's step as long as its weight (relative), or ||u|| = 1 (global)."""
    plain_gradient(model, names, x, y)
    named = dict(model.named_parameters())
    direction = {n: -named[n].grad.clone() for n in names}
    if scaling == "relative":
        return {n: direction[n] * named[n].detach().norm() / direction[n].norm() for n in names}
    total = torch.sqrt(sum(direction[n].pow(2).sum() for n in names))
    return {n: direction[n] / total for n in names}


def dense_top_eigenvalue(model: nn.Module, names: list[str], x, y) -> float:
    """The largest-|λ| eigenvalue of the dense float64 Hessian of the loss over ``names``."""
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    shapes = [base[n].shape for n in names]

    def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, [s.numel() for s in shapes])
        weights = {**base, **{n: part.reshape(s) for n, part, s in zip(names, parts, shapes)}}
        return F.cross_entropy(torch.func.functional_call(model, weights, (x,)), y)

    flat = torch.cat([base[n].reshape(-1) for n in names])
    eigenvalues = torch.linalg.eigvalsh(torch.func.hessian(loss_of_flat)(flat))
    return float(eigenvalues[eigenvalues.abs().argmax()])


def assert_matches_plain(sweep, plain: dict[str, np.ndarray], rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(sweep.relative_function_change, plain["relative_function_change"], rtol=rtol)
    np.testing.assert_allclose(sweep.relative_gradient_change, plain["relative_gradient_change"], rtol=rtol)
    np.testing.assert_allclose(sweep.relative_gradient_change_per_layer[:, 0], plain["first_layer_gradient_change"],
                               rtol=rtol)
    np.testing.assert_allclose(sweep.loss, plain["loss"], rtol=1e-12)
    np.testing.assert_allclose(sweep.kl_divergence, plain["kl_divergence"], rtol=1e-8, atol=1e-15)
    np.testing.assert_array_equal(sweep.accuracy, plain["accuracy"])


@pytest.mark.parametrize("scaling", ["relative", "global"])
def test_small_mlp_matches_plain_float64_loop(scaling):
    model, (x, y) = small_mlp(nn.ReLU), class_data()
    result = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(scaling=scaling, power_iterations=5))
    names = ["0.weight", "2.weight", "4.weight"]
    assert result.whole.layer_names == names
    unit = descent_unit(model, names, x, y, scaling)
    assert_matches_plain(result.whole, plain_sweep(model, names, x, y, SCALES, unit))
    if scaling == "relative":
        np.testing.assert_allclose(result.whole.kappa, np.outer(SCALES, [1, 1, 1]), rtol=1e-12)


def test_probe_set_larger_than_one_batch_weights_each_batch_by_its_size():
    model, (x, y) = small_mlp(nn.ReLU), class_data(n=11)
    names = ["0.weight", "2.weight", "4.weight"]
    result = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(chunk_size=4, power_iterations=500))
    assert_matches_plain(result.whole, plain_sweep(model, names, x, y, SCALES, descent_unit(model, names, x, y)))
    with torch.no_grad():
        per_example = [float(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])) for i in range(len(x))]
    assert result.whole.loss_at_zero == pytest.approx(sum(per_example) / len(x), rel=1e-12)
    assert result.whole.lambda_max == pytest.approx(dense_top_eigenvalue(model, names, x, y), rel=1e-6)


def test_lambda_max_matches_dense_hessian():
    model, (x, y) = small_mlp(), class_data()
    names = ["0.weight", "2.weight", "4.weight"]
    result = run_slice(model, x, y, "cross_entropy", f64_config(power_iterations=1000, scales=(0.01, 0.1)))
    assert result.whole.lambda_max == pytest.approx(dense_top_eigenvalue(model, names, x, y), rel=1e-6)


def test_taylor_model_matches_finite_differences():
    model, (x, y) = small_mlp(), class_data()
    h = 1e-4
    result = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(scales=(h,), two_sided=True, power_iterations=3))
    loss_minus, loss_plus = result.whole.loss
    loss0 = result.whole.loss_at_zero
    assert result.whole.slope == pytest.approx((loss_plus - loss_minus) / (2 * h), rel=1e-6)
    assert result.whole.curvature == pytest.approx((loss_plus - 2 * loss0 + loss_minus) / h**2, rel=1e-4)
    # and the loss model follows the measured loss to third order further out
    wide = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(scales=(1e-3, 1e-2), power_iterations=3))
    errors = np.abs(wide.whole.taylor_loss_model - wide.whole.loss)
    assert errors[1] / errors[0] == pytest.approx(1e3, rel=0.2)


def test_random_direction_is_the_seeded_gaussian_and_reproducible():
    model, (x, y) = small_mlp(), class_data()
    names = ["0.weight", "2.weight", "4.weight"]
    config = f64_config(direction="random", seed=5, power_iterations=5)
    result = run_slice(copy.deepcopy(model), x, y, "cross_entropy", config)
    generator = torch.Generator().manual_seed(5)
    named = dict(model.named_parameters())
    gaussian = {n: torch.randn(named[n].shape, generator=generator, dtype=torch.float64) for n in names}
    unit = {n: gaussian[n] * named[n].detach().norm() / gaussian[n].norm() for n in names}
    assert_matches_plain(result.whole, plain_sweep(model, names, x, y, SCALES, unit))
    again = run_slice(copy.deepcopy(model), x, y, "cross_entropy", config)
    np.testing.assert_array_equal(again.whole.relative_gradient_change, result.whole.relative_gradient_change)
    other_seed = run_slice(small_mlp(), x, y, "cross_entropy", f64_config(direction="random", seed=6, power_iterations=5))
    assert not np.array_equal(result.whole.relative_gradient_change, other_seed.whole.relative_gradient_change)


@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_torchscript_and_export_modules_give_the_plain_loop_numbers(kind):
    model, (x, y) = small_mlp(nn.ReLU), class_data()
    compiled = torch.jit.script(copy.deepcopy(model)) if kind == "torchscript" else torch.export.export(copy.deepcopy(model), (x,)).module()
    config = f64_config(per_layer=True, select="0.weight,2.weight", scales=(0.01, 0.3), power_iterations=300)
    result = run_slice(compiled, x, y, "cross_entropy", config)
    names = ["0.weight", "2.weight"]
    plain = plain_sweep(model, names, x, y, (0.01, 0.3), descent_unit(model, names, x, y))
    assert_matches_plain(result.whole, plain, rtol=1e-8)
    assert result.whole.lambda_max == pytest.approx(dense_top_eigenvalue(model, names, x, y), rel=1e-6)
    assert result.layers["2.weight"].lambda_max == pytest.approx(dense_top_eigenvalue(model, ["2.weight"], x, y), rel=1e-6)
    # the module's own weights are back in place
    assert torch.equal(dict(compiled.named_parameters())["0.weight"], dict(model.named_parameters())["0.weight"])


def test_per_layer_sweep_perturbs_one_layer_with_its_own_gradient():
    model, (x, y) = small_mlp(), class_data()
    result = run_slice(copy.deepcopy(model), x, y, "cross_entropy", f64_config(per_layer=True, power_iterations=300))
    layer = result.layers["2.weight"]
    plain = plain_sweep(model, ["2.weight"], x, y, SCALES, descent_unit(model, ["2.weight"], x, y))
    assert_matches_plain(layer, plain)
    np.testing.assert_allclose(layer.kappa[:, 0], SCALES, rtol=1e-12)
    assert layer.lambda_max == pytest.approx(dense_top_eigenvalue(model, ["2.weight"], x, y), rel=1e-6)
    crossing = np.flatnonzero(plain["relative_gradient_change"] >= 1)
    if crossing.size:
        assert SCALES[crossing[0] - 1] < layer.breakdown_scale <= SCALES[crossing[0]]
    else:
        assert np.isnan(layer.breakdown_scale)


def test_overflow_is_recorded_not_raised():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = class_data()
    # relative steps multiply each of three weight matrices by ~t: (1e20)³ and (1e36)³ overflow float32 (3.4e38)
    result = run_slice(model, x.float(), y, "cross_entropy", SliceConfig(scales=(0.1, 1e20, 1e36), device="cpu", power_iterations=3))
    measured = np.stack([result.whole.loss, result.whole.relative_function_change, result.whole.relative_gradient_change])
    assert np.all(np.isfinite(measured[:, 0]))
    assert not np.isfinite(measured[:, 1:]).any()
    assert result.whole.nonfinite_points == 2
    # one finite positive scale: nothing to tell the shapes apart with; the change stays below 1 where it is defined
    assert result.whole.relative_gradient_change[0] < 1
    assert result.whole.shape == "indistinguishable"
    assert result.whole.verdict.startswith("The relative gradient change does not tell the two shapes apart")
    assert np.isnan(result.whole.breakdown_scale)


@pytest.mark.parametrize(
    "changes",
    [{"direction": "sideways"}, {"direction": "checkpoint:"}, {"scaling": "huge"}, {"norm": "nuclear"},
     {"scales": ()}, {"scales": (0.1, -1.0)}, {"scales": (0.1, 0.01)}, {"dtype": "float16"}],
)
def test_bad_settings_are_refused(changes):
    with pytest.raises(ProbeError):
        run_slice(small_mlp(), *class_data(), "cross_entropy", f64_config(**changes))


def test_log_scales_and_two_sided_scales():
    assert log_scales(1.0, 6) == pytest.approx((1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))
    assert log_scales(1.0, 3, min_scale=1e-4) == pytest.approx((1e-4, 1e-2, 1.0))
    np.testing.assert_array_equal(SliceConfig(scales=(0.1, 1.0), two_sided=True).all_scales, [-1.0, -0.1, 0.1, 1.0])
    with pytest.raises(ProbeError):
        log_scales(0.0, 5)
