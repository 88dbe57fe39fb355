"""The optimiser's own step over its breakdown scale, recorded at diagnostic steps, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.losses import loss_function
from landscape_probe.optim import OPTIMIZER_NAMES, OPTIMIZERS, build_optimizer
from landscape_probe.optim.stepping import take_step
from landscape_probe.training.own_step import breakdown_ratio, copy_with_optimizer, own_step_over_breakdown


def _least_squares(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Linear(4, 2, bias=False).double()
    return model, torch.randn(30, 4, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)


@pytest.mark.parametrize("lr", [0.3, 2.0])
def test_sgd_on_least_squares_gives_eta_times_hg_over_g(lr: float) -> None:
    """r(t) = t·η·||H g|| / ||g|| exactly (the gradient is linear in W), so the ratio is η·||H g|| / ||g||."""
    model, x, y = _least_squares()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ratio = own_step_over_breakdown(model, optimizer, loss_function("mse"), x, y)
    w, xs = model.weight.detach().numpy(), x.numpy().T
    scale = 2 / (30 * 2)
    g = scale * (w @ xs - y.numpy().T) @ xs.T
    hg = scale * g @ xs @ xs.T
    expected = lr * np.linalg.norm(hg) / np.linalg.norm(g)
    assert 0.25 < expected < 4
    assert ratio == pytest.approx(expected, rel=1e-9)
    assert torch.equal(model.weight, torch.from_numpy(w)) and not optimizer.state  # nothing of theirs changed


def test_momentum_uses_the_saved_buffer_and_leaves_it_alone() -> None:
    model, x, y = _least_squares(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    loss_fn = loss_function("mse")
    loss_fn(model(x), y).backward()
    optimizer.step()
    buffer = optimizer.state[model.weight]["momentum_buffer"].clone()
    ratio = own_step_over_breakdown(model, optimizer, loss_fn, x, y)
    assert torch.equal(optimizer.state[model.weight]["momentum_buffer"], buffer)
    w, xs = model.weight.detach().numpy(), x.numpy().T
    scale = 2 / 60
    g = scale * (w @ xs - y.numpy().T) @ xs.T
    step = -0.2 * (0.9 * buffer.numpy() + g)
    expected = np.linalg.norm(scale * step @ xs @ xs.T) / np.linalg.norm(g)
    assert ratio == pytest.approx(expected, rel=1e-9)


def test_breakdown_ratio_bounds_and_nan() -> None:
    assert breakdown_ratio([0.5, 1.0], [1.5, 3.0]) == 2.0  # already past at the smallest scale: a lower bound
    assert math.isnan(breakdown_ratio([0.5, 1.0], [0.1, 0.2]))
    assert math.isnan(breakdown_ratio([0.5, 1.0], [math.nan, 2.0]))


def test_probe_train_records_it_at_every_diagnostic_step(tmp_path) -> None:
    runs = lp.train("mlp", "digits", optimizers=("sgd", "adam", "kfac"), depth=2, width=16, epochs=1,
                    diagnostics_every=10, device="cpu")
    for run in runs.runs:
        values = np.asarray(run.records["step_over_breakdown"], dtype=float)
        assert len(values) == len(run.records["diagnostic_steps"])
        assert np.isfinite(values).any() and (values[np.isfinite(values)] > 0).all()


def _trained_mlp(name: str) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    """A tiny MLP after two steps of ``name`` (SOAP's first step only gathers statistics), with a
    learning-rate scheduler as in the training loop (it wraps ``optimizer.step``)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(24, 4, dtype=torch.float64), torch.randn(24, 3, dtype=torch.float64)
    optimizer = build_optimizer(name, model, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step)
    for _ in range(2):
        take_step(model, optimizer, loss_function("mse"), x, y)
        scheduler.step()
    return model, optimizer, x, y


AVAILABLE = [name for name in OPTIMIZER_NAMES if OPTIMIZERS[name].available]


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_optimizer_in_the_table_gets_a_finite_ratio(name: str) -> None:
    model, optimizer, x, y = _trained_mlp(name)
    ratio = own_step_over_breakdown(model, optimizer, loss_function("mse"), x, y)
    assert math.isfinite(ratio) and ratio > 0


@pytest.mark.parametrize("name", AVAILABLE)
def test_the_copied_step_is_the_real_next_step_exactly(name: str) -> None:
    """K-FAC's copy records through hooks on the copied model; Muon + AdamW copies both halves."""
    model, optimizer, x, y = _trained_mlp(name)
    copied, twin = copy_with_optimizer(model, optimizer)
    assert {id(p) for p in copied.parameters()} == {id(p) for group in twin.param_groups for p in group["params"]}
    copied_step = take_step(copied, twin, loss_function("mse"), x, y)
    real_step = take_step(model, optimizer, loss_function("mse"), x, y)
    assert copied_step.keys() == real_step.keys()
    for key, delta in real_step.items():
        assert torch.any(delta != 0) and torch.equal(copied_step[key], delta), key
