"""Schedule-Free AdamW (the authors' ``schedulefree`` package): its averaging, and the loop's train()/eval() calls."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.optim import build_optimizer

pytest.importorskip("schedulefree")  # an optional extra; in the test extra, so CI runs these


def test_the_average_x_and_the_gradient_point_y_follow_the_formula() -> None:
    """Defazio et al. (2024), Schedule-Free AdamW with constant lr, no warmup, r = 0, restated in float64:

        y_t = (1 − β₁)·z_t + β₁·x_t                   (the gradient g_t is taken at y_t)
        v_t = β₂·v_{t−1} + (1 − β₂)·g_t²,   d_t = g_t / (sqrt(v_t / (1 − β₂^t)) + ε) + λ·y_t
        z_{t+1} = z_t − γ·d_t
        x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1},   c_{t+1} = 1/(t+1)

    so x is the uniform average of z_1 … z_T; eval() shows x, train() shows y.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    w0 = torch.randn(4, generator=generator, dtype=torch.float64)

    def gradient(w: torch.Tensor) -> torch.Tensor:  # of the loss ½·||a·w − b||², written out
        return a.T @ (a @ w - b)

    lr, beta1, beta2, eps, decay, steps = 0.05, 0.9, 0.999, 1e-8, 0.01, 25
    x, z, v, zs = w0.clone(), w0.clone(), torch.zeros(4, dtype=torch.float64), []
    for t in range(1, steps + 1):
        y = (1 - beta1) * z + beta1 * x
        g = gradient(y)
        v = beta2 * v + (1 - beta2) * g * g
        z = z - lr * (g / ((v / (1 - beta2**t)).sqrt() + eps) + decay * y)
        zs.append(z)
        x = (1 - 1 / t) * x + (1 / t) * z
    torch.testing.assert_close(x, torch.stack(zs).mean(0), rtol=1e-12, atol=1e-14)

    model = nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0[None, :])
    optimizer = build_optimizer("schedulefree_adamw", model, lr, weight_decay=decay)
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * (a @ model.weight[0] - b).pow(2).sum()).backward()
        optimizer.step()
    torch.testing.assert_close(model.weight[0].detach(), (1 - beta1) * z + beta1 * x, rtol=1e-10, atol=1e-12)
    optimizer.eval()
    torch.testing.assert_close(model.weight[0].detach(), x, rtol=1e-10, atol=1e-12)
    optimizer.train()
    torch.testing.assert_close(model.weight[0].detach(), (1 - beta1) * z + beta1 * x, rtol=1e-10, atol=1e-12)


def test_the_training_loop_evaluates_and_saves_the_average(tmp_path) -> None:
    """The loop calls eval() before the epoch evaluation and at the end, so the checkpoint holds x, not y."""
    from landscape_probe.checkpoints.load import load_checkpoint
    from landscape_probe.training.api import train

    result = train("mlp:width=8", "digits", optimizers="schedulefree_adamw", depth=2, epochs=2, batch_size=256,
                   diagnostics_every=3, device="cpu", output=tmp_path)
    (run,) = result.runs
    checkpoint = tmp_path / run.name / "checkpoint.pt"
    loaded = load_checkpoint(checkpoint)
    state = torch.load(checkpoint, weights_only=True)["optimizer"]
    assert not state["param_groups"][0]["train_mode"]  # saved in eval mode: the model's weights are x
    model = loaded.model
    z = [s["z"] for _, s in sorted(state["state"].items())]
    beta1 = state["param_groups"][0]["betas"][0]
    y = [(1 - beta1) * zi + beta1 * p.detach() for zi, p in zip(z, model.parameters(), strict=True)]
    assert any(not torch.allclose(p, yi) for p, yi in zip(model.parameters(), y))  # x and y differ after training
    assert run.records["epoch_train_loss"][-1] < run.records["epoch_train_loss"][0]


def test_a_missing_package_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "schedulefree", None)  # import schedulefree now raises ImportError
    with pytest.raises(ProbeError, match=r"^Schedule-Free AdamW needs the schedulefree package: pip install "):
        build_optimizer("schedulefree_adamw", nn.Linear(2, 2))


def test_its_slice_direction_is_the_step_of_the_average_x() -> None:
    """From fresh state x = y = z = W, so z₁ = W − γ·g/(|g| + ε) and x₁ = z₁: the direction x₁ − W."""
    from landscape_probe.slicing.optimizer_direction import stepped_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    x, y = torch.randn(10, 3).double(), torch.randint(0, 2, (10,))
    after, which = stepped_model(model, x, y, "cross_entropy", "optimizer:schedulefree_adamw:0.01", device="cpu",
                                 dtype=torch.float64)
    loss = nn.functional.cross_entropy(model(x), y)
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    for p, q, g in zip(model.parameters(), after.parameters(), gradients, strict=True):
        torch.testing.assert_close(q - p.detach(), -0.01 * g / (g.abs() + 1e-8), rtol=1e-10, atol=1e-15)
    assert which == "schedulefree_adamw, lr 0.01: its first step from fresh state"
