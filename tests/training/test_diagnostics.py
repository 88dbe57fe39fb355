"""Training diagnostics against plain loops, dense float64 algebra and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_probe.training import diagnostics
from landscape_probe.training.per_example_norms import squared_norms_and_sum
from landscape_probe.losses import loss_function
from landscape_probe.models.zoo import build_model

CROSS_ENTROPY = loss_function("cross_entropy")


def _tiny_mlp(norm: str = "none") -> nn.Module:
    torch.manual_seed(0)
    args = {"name": "mlp", "in_features": 4, "num_outputs": 3, "depth": 3, "width": 5, "norm": norm}
    return build_model(args).double()


def _batch(n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(n, 4, generator=generator, dtype=torch.float64), torch.randint(0, 3, (n,), generator=generator)


def _loop_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-example gradients, one backward pass per example, flattened to rows."""
    rows = []
    model.eval()
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_gradient_noise_scale_matches_a_per_example_loop(norm: str) -> None:
    model = _tiny_mlp(norm)
    if norm == "batch":
        model.train()
        model(torch.randn(16, 4, dtype=torch.float64))  # move the running statistics away from 0/1
    x, y = _batch()
    g = _loop_gradients(model, x, y)
    mean = g.mean(axis=0)
    trace_covariance = sum(float(np.sum((row - mean) ** 2)) for row in g) / (len(g) - 1)
    expected = trace_covariance / float(np.sum(mean**2))
    model.train()
    assert diagnostics.gradient_noise_scale(model, CROSS_ENTROPY, x, y) == pytest.approx(expected, rel=1e-10)
    assert model.training, "the model's mode is restored"


def test_gradient_noise_scale_by_per_example_gradients_matches_a_loop() -> None:
    """A grouped convolution is outside the one-backward-pass method: vmap forms the per-example gradients."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Unflatten(1, (2, 2)), nn.Conv1d(2, 4, 2, groups=2), nn.Flatten(), nn.Tanh(),
                          nn.Linear(4, 3)).double()
    assert squared_norms_and_sum(model, CROSS_ENTROPY, *_batch()) is None
    x, y = _batch()
    g = _loop_gradients(model, x, y)
    mean = g.mean(axis=0)
    expected = sum(float(np.sum((row - mean) ** 2)) for row in g) / (len(g) - 1) / float(np.sum(mean**2))
    assert diagnostics.gradient_noise_scale(model, CROSS_ENTROPY, x, y) == pytest.approx(expected, rel=1e-10)


def test_gradient_noise_scale_of_identical_examples_is_zero() -> None:
    model = _tiny_mlp()
    x, y = _batch(1)
    value = diagnostics.gradient_noise_scale(model, CROSS_ENTROPY, x.repeat(4, 1), y.repeat(4))
    assert value == pytest.approx(0.0, abs=1e-20)


def test_gradient_noise_scale_needs_two_examples() -> None:
    x, y = _batch(1)
    with pytest.raises(ValueError):
        diagnostics.gradient_noise_scale(_tiny_mlp(), CROSS_ENTROPY, x, y)


@pytest.mark.parametrize("shape", [(6, 4), (3, 8), (4, 2, 3, 3)])
def test_spectral_shift_matches_numpy_svd(shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(7)
    w = torch.randn(shape, generator=generator, dtype=torch.float64)
    dw = 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
    matrix, moved = w.reshape(shape[0], -1).numpy(), (w + dw).reshape(shape[0], -1).numpy()
    sigma = np.linalg.svd(matrix, compute_uv=False)
    sigma_new = np.linalg.svd(moved, compute_uv=False)
    expected = np.max(np.abs(sigma_new - sigma)) / np.sqrt(np.mean(sigma**2))
    assert diagnostics.spectral_shift(w, w + dw) == pytest.approx(expected, rel=1e-12)
    # Mirsky: max |σ_i(W+ΔW) − σ_i(W)| ≤ ||ΔW||_2
    bound = np.linalg.norm(dw.reshape(shape[0], -1).numpy(), 2) / np.sqrt(np.mean(sigma**2))
    assert diagnostics.spectral_shift(w, w + dw) <= bound + 1e-12


def test_sharpness_of_least_squares_is_the_top_eigenvalue_of_2_xtx_over_n() -> None:
    generator = torch.Generator().manual_seed(5)
    spread = torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
    x = torch.randn(20, 3, generator=generator, dtype=torch.float64) * spread
    y = torch.randn(20, 1, generator=generator, dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    expected = float(np.linalg.eigvalsh(2.0 * x.T.numpy() @ x.numpy() / len(x)).max())
    value = diagnostics.sharpness(model, loss_function("mse"), x, y, iterations=300)
    assert value == pytest.approx(expected, rel=1e-6)


def test_normalised_layers() -> None:
    assert diagnostics.normalised_layers(_tiny_mlp("batch")) == ["hidden.0.weight", "hidden.1.weight"]
    assert diagnostics.normalised_layers(_tiny_mlp("layer")) == ["hidden.0.weight", "hidden.1.weight"]
    assert diagnostics.normalised_layers(_tiny_mlp("none")) == []
    sequential = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    assert diagnostics.normalised_layers(sequential) == ["0.weight"]


def test_relative_spectral_update_of_a_rank_one_step_is_its_closed_form() -> None:
    """SGD on one example moves a Linear weight by ΔW = −η·δ·xᵀ, whose spectral norm is η·‖δ‖·‖x‖ (= ‖ΔW‖_F)."""
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    delta, x = torch.randn(5, generator=generator, dtype=torch.float64), torch.randn(4, generator=generator, dtype=torch.float64)
    recorded = diagnostics.relative_spectral_update(w, w - 0.1 * torch.outer(delta, x))
    expected = 0.1 * float(delta.norm() * x.norm()) / float(torch.linalg.matrix_norm(w, ord=2))
    assert recorded == pytest.approx(expected, rel=1e-12)


def test_relative_spectral_update_reads_a_conv_kernel_as_out_by_rest() -> None:
    generator = torch.Generator().manual_seed(2)
    w = torch.randn(3, 2, 3, 3, generator=generator)
    after = w + 0.01 * torch.randn(3, 2, 3, 3, generator=generator)
    expected = np.linalg.norm((after - w).double().reshape(3, -1).numpy(), 2) / np.linalg.norm(
        w.double().reshape(3, -1).numpy(), 2)
    assert diagnostics.relative_spectral_update(w, after) == pytest.approx(expected, rel=1e-12)


def test_muons_step_is_flat_in_its_singular_values_and_sgds_is_not() -> None:
    """What the spectral record shows: Muon's orthogonalised step has all singular values about equal
    (within its Newton–Schulz iteration's spread, 0.5–1.5 by torch's documentation), so its spectral
    relative update is near ‖ΔW‖_F / sqrt(min(m, n)) / ‖W‖₂; SGD's step is dominated by a few directions,
    and on one example has rank one."""
    from landscape_probe.optim import build_optimizer
    from landscape_probe.training.recorder import Recorder

    ratios = {}
    for name, batch in (("muon", 64), ("sgd", 64), ("sgd_one_example", 1)):
        torch.manual_seed(0)
        model = nn.Linear(16, 16, bias=False).double()
        optimizer = build_optimizer(name.removesuffix("_one_example"), model, 0.01)
        x, y = torch.randn(batch, 16, dtype=torch.float64), torch.randint(0, 16, (batch,))
        recorder = Recorder(model, CROSS_ENTROPY, diagnostic_batch=(x, y), seed=0)
        before = recorder.snapshot()
        CROSS_ENTROPY(model(x), y).backward()
        optimizer.step()
        recorder.record_update(before, diagnosed=True)
        w, step = before["weight"], model.weight.detach() - before["weight"]
        frobenius_over_spectral = float(step.norm() / torch.linalg.matrix_norm(step, ord=2))
        spectral = recorder.records["relative_update_spectral"][-1][0]
        assert spectral == pytest.approx(float(torch.linalg.matrix_norm(step, ord=2)
                                               / torch.linalg.matrix_norm(w, ord=2)), rel=1e-12)
        ratios[name] = frobenius_over_spectral
    assert ratios["muon"] > 0.5 * 4.0  # sqrt(16) if every singular value were equal
    assert ratios["sgd"] < 0.8 * ratios["muon"]
    assert ratios["sgd_one_example"] == pytest.approx(1.0, rel=1e-9)  # rank one: ‖ΔW‖_F = ‖ΔW‖₂
