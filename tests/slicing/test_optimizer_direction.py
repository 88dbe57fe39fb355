"""`--direction optimizer:NAME[:lr]`: the optimiser's own step, and where it sits against the breakdown scale."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.slicing.api import slice as slice_model
from landscape_probe.slicing.optimizer_direction import stepped_model
from landscape_probe.slicing.result import SliceResult
from landscape_probe.training.api import train

runner = CliRunner()


def _mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    x = torch.randn(20, 4).double()  # float32 values: lp.slice's data are float32, cast to float64 for the slice
    return model, x, torch.randint(0, 3, (20,))


def _gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """∇ of the mean cross-entropy by autograd, written out here."""
    params = dict(model.named_parameters())
    logits = torch.func.functional_call(model, params, (x,))
    loss = -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y].mean()
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


def _step(model: nn.Module, after: nn.Module) -> dict[str, torch.Tensor]:
    before = dict(model.named_parameters())
    return {k: p.detach() - before[k].detach() for k, p in after.named_parameters()}


def test_optimizer_sgd_lr_is_minus_lr_times_the_gradient() -> None:
    model, x, y = _mlp()
    after, which = stepped_model(model, x, y, "cross_entropy", "optimizer:sgd:0.3", device="cpu", dtype=torch.float64)
    gradient, step = _gradient(model, x, y), _step(model, after)
    for name, g in gradient.items():
        torch.testing.assert_close(step[name], -0.3 * g, rtol=0, atol=1e-15)  # float64 rounding of W − η·g − W
    assert which == "sgd, lr 0.3: its first step from fresh state"
    result = slice_model(model, (x, y), direction="optimizer:sgd:0.3", scales=(0.5, 1.0), dtype="float64",
                         probe_size=20, device="cpu")
    weights = [k for k in gradient if k.endswith("weight")]
    g_norm = math.sqrt(sum(float(gradient[k].square().sum()) for k in weights))
    assert result.config.resolved_scaling == "none"
    assert result.unit_step_norm == pytest.approx(0.3 * g_norm, rel=1e-12)  # t = 1 is the step, ||u|| = η·||g||
    assert result.slope == pytest.approx(-0.3 * g_norm**2, rel=1e-12)
    assert result.provenance["optimizer_step"] == which


def test_adams_first_step_from_fresh_state_is_lr_times_the_sign() -> None:
    model, x, y = _mlp()
    after, _ = stepped_model(model, x, y, "cross_entropy", "optimizer:adam:0.01", device="cpu", dtype=torch.float64)
    for name, g in _gradient(model, x, y).items():  # m̂ = g, v̂ = g²: the step is −η·g / (|g| + ε)
        torch.testing.assert_close(_step(model, after)[name], -0.01 * g / (g.abs() + 1e-8), rtol=1e-12, atol=1e-17)


def test_a_run_checkpoint_of_that_optimiser_gives_the_step_from_its_saved_state(tmp_path: Path) -> None:
    run = train("mlp:width=6", "digits", optimizers="momentum", lr=0.05, depth=2, epochs=1, batch_size=512,
                diagnostics_every=0, device="cpu", output=tmp_path)
    checkpoint = tmp_path / run.runs[0].name / "checkpoint.pt"
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.double()
    x, y = torch.randn(30, 64, dtype=torch.float64), torch.randint(0, 10, (30,))
    after, which = stepped_model(model, x, y, "cross_entropy", "optimizer:momentum", device="cpu",
                                 dtype=torch.float64, saved=loaded)
    assert which == f"momentum, lr 0.05: the step it would take next from the state saved at step {loaded.step}"
    buffers = [s["momentum_buffer"].double() for _, s in sorted(loaded.optimizer["state"].items())]
    for (name, g), buffer in zip(_gradient(model, x, y).items(), buffers, strict=True):
        torch.testing.assert_close(_step(model, after)[name], -0.05 * (0.9 * buffer + g), rtol=1e-10, atol=1e-14)
    fresh, which = stepped_model(model, x, y, "cross_entropy", "optimizer:sgd:0.05", device="cpu",
                                 dtype=torch.float64, saved=loaded)
    assert which.endswith("its first step from fresh state")  # the run trained momentum, not sgd


@pytest.mark.parametrize(("lr", "past"), [(2.0, True), (0.05, False)])
def test_step_over_breakdown_on_a_quadratic_matches_its_closed_form(lr: float, past: bool) -> None:
    """Least squares, loss(w) = (1/N)·||Xw − y||²: g = (2/N)·Xᵀ(Xw − y), H = (2/N)·XᵀX, constant.

    Along d = −η·g the relative gradient change is t·η·||Hg||/||g|| (exactly linear in t), so it
    reaches 1 at t* = ||g|| / (η·||Hg||), and step / breakdown = 1/t* = η·||Hg||/||g||.
    """
    generator = np.random.default_rng(3)
    # float32 values (lp.slice reads data as float32), so the float64 closed form sees the same numbers
    x = (generator.normal(size=(40, 5)) * np.array([3.0, 1.0, 0.5, 0.2, 0.1])).astype(np.float32).astype(np.float64)
    y = generator.normal(size=(40, 1)).astype(np.float32).astype(np.float64)
    model = nn.Linear(5, 1, bias=False).double()
    w = generator.normal(size=5)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w[None, :]))
    g = 2 / 40 * x.T @ (x @ w - y[:, 0])
    expected = lr * np.linalg.norm(2 / 40 * x.T @ x @ g) / np.linalg.norm(g)
    result = slice_model(model, (torch.from_numpy(x), torch.from_numpy(y)), direction=f"optimizer:sgd:{lr}",
                         dtype="float64", probe_size=40, device="cpu", points=15)
    assert result.scales[-1] == 100.0  # an optimizer direction looks up to 100 steps far by default
    assert result.step_over_breakdown == pytest.approx(expected, rel=1e-9)
    assert (result.step_over_breakdown > 1) == past
    text = " ".join(result.summary(width=200).split())
    assert "step / breakdown = " in text and ("past its trust region" in text) == past


def _data(tmp_path: Path) -> str:
    """Data for the tiny MLP of conftest.py: 5 features, 3 classes."""
    x = np.random.default_rng(0).normal(size=(80, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.argmax(x[:, :3], axis=1))
    return str(tmp_path / "d.npz")


def test_the_cli_states_and_records_step_over_breakdown(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "s.h5"
    result = runner.invoke(app, ["slice", str(tiny_checkpoint), "--data", _data(tmp_path), "--direction",
                                 "optimizer:sgd:0.5", "--probe-size", "64", "--points", "8", "--device", "cpu",
                                 "--no-plots", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "Optimizer step (sgd, lr 0.5: its first step from fresh state): step / breakdown" in " ".join(
        result.output.split())
    loaded = SliceResult.load(out)
    with h5py.File(out) as h5:
        assert h5["step_over_breakdown"][()] == loaded.step_over_breakdown
        assert h5.attrs["scaling"] == "none" and h5.attrs["optimizer_step"].startswith("sgd, lr 0.5")
    if math.isfinite(loaded.breakdown_scale):
        assert loaded.step_over_breakdown == pytest.approx(1 / loaded.breakdown_scale)
    shown = runner.invoke(app, ["show", str(out)])
    assert "step / breakdown" in shown.output
    other = SliceResult.load(_gradient_slice(tmp_path, tiny_checkpoint))
    assert other.step_over_breakdown is None and "step / breakdown" not in other.summary()


def _gradient_slice(tmp_path: Path, checkpoint: Path) -> Path:
    out = tmp_path / "g.h5"
    result = runner.invoke(app, ["slice", str(checkpoint), "--data", _data(tmp_path), "--scales", "0.1,1",
                                 "--probe-size", "32", "--device", "cpu", "--no-plots", "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    ("direction", "message"),
    [
        ("optimizer:nosuch", "Unknown optimizer 'nosuch'"),
        ("optimizer:", "needs a name"),
        ("optimizer:sgd:fast", "Cannot read the learning rate 'fast'"),
        ("optimizer:sgd:-1", "positive number"),
        ("optimizer:no_such_module_xyz:Opt", "Cannot import module 'no_such_module_xyz'"),
    ],
)
def test_a_bad_optimizer_direction_is_one_sentence_and_exit_2(
    tmp_path: Path, tiny_checkpoint: Path, direction: str, message: str
) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["slice", str(tiny_checkpoint), "--data", _data(tmp_path),
                                                   "--direction", direction,
                                                   "--device", "cpu", "--no-plots", "--output", str(tmp_path / "s.h5")]))
    assert message in text
