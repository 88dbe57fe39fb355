"""Madam, AGD, Nero and K-FAC against our own float64 re-statements of their authors' rules.

Each test runs the optimiser beside a plain loop written from the reference's
maths (github.com/jxbz/madam, jxbz/agd, jxbz/nero; alecwangcq/KFAC-Pytorch for
K-FAC) for several steps, in the cases where the old rule here differed, and
checks that the old rule would indeed have given a different answer.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from landscape_probe.optim import AGD, KFAC, Madam, Nero


def random(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def loss_of(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return (model(x) - y).pow(2).mean()


def gradients(model: nn.Module, x: Tensor, y: Tensor) -> list[Tensor]:
    model.zero_grad()
    loss_of(model, x, y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


# ---------------------------------------------------------------- Madam


def madam_by_hand(w: list[float], grads: list[list[float]], lr: float, g_bound: float | None) -> list[float]:
    """Entry by entry: v ← 0.999v + 0.001g²; g* = clamp(g/sqrt(v/(1 − 0.999ᵗ)), ±g_bound); w ← w·exp(−η·sign(w)·g*),
    then |w| ≤ 3·rms(w₀). ``g_bound`` None is the old, unclamped rule."""
    limit = 3.0 * math.sqrt(sum(v * v for v in w) / len(w))
    w, average = list(w), [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        for k, gk in enumerate(g):
            average[k] = 0.999 * average[k] + 0.001 * gk * gk
            normalised = gk / math.sqrt(average[k] / (1 - 0.999**t)) if average[k] > 0 else 0.0
            if g_bound is not None:
                normalised = min(max(normalised, -g_bound), g_bound)
            sign = math.copysign(1.0, w[k]) if w[k] != 0 else 0.0
            w[k] = min(max(w[k] * math.exp(-lr * sign * normalised), -limit), limit)
    return w


def test_madam_clamps_the_normalised_gradient_of_a_spike_after_small_ones() -> None:
    start = [0.5, -0.8, 0.3, 1.1]
    small = [[1e-4, -1e-4, 2e-4, 1e-4], [-1e-4, 1e-4, -2e-4, -1e-4]] * 250  # back and forth: W stays put
    grads = small + [[1.0, -2.0, 0.5, 3.0]] + [[0.01, 0.02, -0.01, 0.0]] * 3  # then a spike, |g*| ≈ 20 unclamped
    p = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = Madam([p], lr=0.01)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    expected = madam_by_hand(start, grads, lr=0.01, g_bound=10.0)
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-13, atol=1e-13)
    unclamped = torch.tensor(madam_by_hand(start, grads, lr=0.01, g_bound=None), dtype=torch.float64)
    assert (p.detach() - unclamped).abs().max() > 1e-2


def test_madam_g_bound_is_a_constructor_option() -> None:
    start, grads = [0.5, -0.8], [[1e-3, 1e-3]] * 5 + [[1.0, 1.0]]
    p = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = Madam([p], lr=0.05, g_bound=2.0)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    expected = madam_by_hand(start, grads, lr=0.05, g_bound=2.0)
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- AGD


def agd_by_hand(kernels: list[Tensor], grads: list[Tensor], per_position: bool) -> list[Tensor]:
    """One reference AGD step on bias-free layers: each kernel position (i, j) is an out × in matrix with its own
    Frobenius norm; sqrt(out/in)/sqrt(kh·kw) scales it. ``per_position`` False is the old whole-tensor rule."""
    depth, gain, scales = len(kernels), 0.0, []
    for g in grads:
        out_channels, in_channels, kh, kw = g.shape
        scale = math.sqrt(out_channels / in_channels) / math.sqrt(kh * kw)
        scales.append(scale)
        if per_position:
            gain += scale * sum(math.sqrt(float((g[:, :, i, j] ** 2).sum())) for i in range(kh) for j in range(kw))
        else:
            gain += scale * math.sqrt(float((g**2).sum()))
    eta = math.log(0.5 * (1 + math.sqrt(1 + 4 * gain / depth)))
    stepped = []
    for w, g, scale in zip(kernels, grads, scales, strict=True):
        new = w.clone()
        for i in range(w.shape[2]):
            for j in range(w.shape[3]):
                norm = math.sqrt(float((g[:, :, i, j] ** 2).sum())) if per_position else math.sqrt(float((g**2).sum()))
                new[:, :, i, j] -= eta / depth * scale * g[:, :, i, j] / norm
        stepped.append(new)
    return stepped


def two_conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Tanh(), nn.Conv2d(3, 2, 2, bias=False)
    ).double()


def test_agd_normalises_conv_kernels_per_position_as_the_reference() -> None:
    ours, reference, old = two_conv_net(), two_conv_net(), two_conv_net()
    optimizer = AGD(ours.parameters())
    for step in range(4):
        x, y = random(5, 2, 4, 4, seed=step), random(5, 2, 3, 3, seed=100 + step)
        gradients(ours, x, y)
        optimizer.step()
        for model, per_position in ((reference, True), (old, False)):
            grads = gradients(model, x, y)
            with torch.no_grad():
                for p, new in zip(model.parameters(), agd_by_hand(list(model.parameters()), grads, per_position)):
                    p.copy_(new)
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-12)
    assert max(float((p - q).abs().max()) for p, q in zip(ours.parameters(), old.parameters())) > 1e-3


# ---------------------------------------------------------------- Nero


def nero_net() -> nn.Module:
    """A fan-in-1 first layer, zero biases, and a hidden layer whose neurons are centred at unit norm
    (what the reference's constructor does to them)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for layer in (model[0], model[2], model[4]):
            layer.bias.zero_()
        for layer in (model[2], model[4]):
            centred = layer.weight - layer.weight.mean(dim=1, keepdim=True)
            layer.weight.copy_(centred / centred.norm(dim=1, keepdim=True))
    return model


def nero_by_hand(model: nn.Module, batches: list[tuple[Tensor, Tensor]], lr: float, beta: float) -> None:
    """The reference rule, one tensor at a time: σ = mean of the neuron norms (|b| for a bias), 0.01 if zero;
    v per neuron (per entry for a bias); p ← p − η·σ·g/sqrt(v/(1 − βᵗ)); neurons with fan-in > 1 re-centred and
    re-normalised to 1 (a fan-in-1 neuron is left unprojected, where the reference would divide 0 by 0)."""
    params = list(model.parameters())
    scales, averages = [], []
    for p in params:
        norms = p.detach().reshape(p.shape[0], -1).norm(dim=1) if p.ndim > 1 else p.detach().abs()
        scales.append(float(norms.mean()) if float(norms.mean()) != 0.0 else 0.01)
        averages.append(torch.zeros_like(norms))
    for t, (x, y) in enumerate(batches, start=1):
        grads = gradients(model, x, y)
        with torch.no_grad():
            for k, (p, g) in enumerate(zip(params, grads)):
                rows = g.reshape(g.shape[0], -1) if p.ndim > 1 else g
                squared = (rows**2).sum(dim=1) if p.ndim > 1 else rows**2
                averages[k] = beta * averages[k] + (1 - beta) * squared
                denominator = torch.sqrt(averages[k] / (1 - beta**t))
                shaped = denominator.reshape(-1, *[1] * (p.ndim - 1))
                p -= lr * scales[k] * torch.where(shaped > 0, g / shaped, 0.0)
                if p.ndim > 1 and p[0].numel() > 1:
                    centred = p - p.mean(dim=1, keepdim=True)
                    p.copy_(centred / centred.norm(dim=1, keepdim=True))


def test_nero_matches_the_reference_on_zero_biases_and_fan_in_one_weights() -> None:
    lr, beta = 0.05, 0.9
    batches = [(random(6, 1, seed=200 + s), random(6, 2, seed=300 + s)) for s in range(5)]
    ours, reference = nero_net(), nero_net()
    optimizer = Nero(ours.parameters(), lr=lr, beta=beta)
    for x, y in batches:
        gradients(ours, x, y)
        optimizer.step()
    nero_by_hand(reference, batches, lr, beta)
    for p, q in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-12)
    old_bias_scale = nero_net()
    old_optimizer = Nero(old_bias_scale.parameters(), lr=lr, beta=beta, bias_scale=1.0)
    for x, y in batches:
        gradients(old_bias_scale, x, y)
        old_optimizer.step()
    assert float((old_bias_scale[2].bias - reference[2].bias).abs().max()) > 1e-2


def test_nero_bias_scale_is_the_mean_absolute_value_not_the_rms() -> None:
    b, g = torch.tensor([0.1, -1.0, 0.4], dtype=torch.float64), torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    p = nn.Parameter(b.clone())
    p.grad = g.clone()
    Nero([p], lr=0.1, beta=0.5).step()
    torch.testing.assert_close(p.detach(), b - 0.1 * 0.5 * torch.sign(g))  # mean |b| = 0.5; g/sqrt(g²) = sign g


# ---------------------------------------------------------------- K-FAC


def kfac_net() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def matrix_form(layer: nn.Linear, of_grad: bool) -> Tensor:
    w, b = (layer.weight.grad, layer.bias.grad) if of_grad else (layer.weight.detach(), layer.bias.detach())
    return torch.cat([w, b[:, None]], dim=1)


def eigen_damped(a: Tensor, g: Tensor, m: Tensor, damping: float) -> Tensor:
    """vec(P) = (A ⊗ G + λI)⁻¹ vec(M), built densely with column-stacking vec."""
    kronecker = torch.kron(a, g) + damping * torch.eye(a.shape[0] * g.shape[0], dtype=a.dtype)
    solved = torch.linalg.solve(kronecker, m.T.reshape(-1))
    return solved.reshape(m.shape[1], m.shape[0]).T


def factored_damped(a: Tensor, g: Tensor, m: Tensor, damping: float) -> Tensor:
    pi = math.sqrt((float(torch.trace(a)) / a.shape[0]) / (float(torch.trace(g)) / g.shape[0]))
    damped_a = a + pi * math.sqrt(damping) * torch.eye(a.shape[0], dtype=a.dtype)
    damped_g = g + math.sqrt(damping) / pi * torch.eye(g.shape[0], dtype=g.dtype)
    return torch.linalg.solve(damped_g, m) @ torch.linalg.inv(damped_a)


def run_kfac_beside_the_formula(damping_mode: str, kl_clip: float | None) -> list[float]:
    """Four steps of K-FAC (weight decay 0.1, no momentum) checked step by step against
    −lr·ν·P with P from the dense formula of ``damping_mode``; returns ν of each step."""
    lr, damping, weight_decay = 0.5, 0.03, 0.1
    model = kfac_net()
    optimizer = KFAC(
        model, lr=lr, damping=damping, weight_decay=weight_decay, decay=0.5, inverse_every=1,
        damping_mode=damping_mode, kl_clip=kl_clip,
    )
    layers, clips = [model[0], model[2]], []
    for step in range(4):
        x, y = random(7, 3, seed=400 + step), random(7, 2, seed=500 + step)
        gradients(model, x, y)
        ms = [matrix_form(layer, True) + weight_decay * matrix_form(layer, False) for layer in layers]
        before = [matrix_form(layer, False) for layer in layers]
        optimizer.step()
        factors = [optimizer.kronecker_factors(layer) for layer in layers]
        rule = eigen_damped if damping_mode == "eigen" else factored_damped
        directions = [rule(f.activation, f.gradient, m, damping) for f, m in zip(factors, ms)]
        kl = sum(lr**2 * float((d * m).sum()) for d, m in zip(directions, ms))
        nu = 1.0 if kl_clip is None else min(1.0, math.sqrt(kl_clip / kl))
        clips.append(nu)
        for layer, w, d in zip(layers, before, directions):
            torch.testing.assert_close(matrix_form(layer, False), w - lr * nu * d, rtol=1e-10, atol=1e-12)
    return clips


def test_kfac_eigen_damping_is_the_inverse_of_the_damped_kronecker_product() -> None:
    run_kfac_beside_the_formula("eigen", kl_clip=None)


def test_kfac_eigen_damping_differs_from_factored_damping() -> None:
    model_eigen, model_factored = kfac_net(), kfac_net()
    for model, mode in ((model_eigen, "eigen"), (model_factored, "factored")):
        optimizer = KFAC(model, lr=0.5, damping=0.03, inverse_every=1, damping_mode=mode)
        gradients(model, random(7, 3, seed=600), random(7, 2, seed=601))
        optimizer.step()
    assert float((model_eigen[0].weight - model_factored[0].weight).abs().max()) > 1e-3


def test_kfac_kl_clip_scales_every_layer_by_one_factor() -> None:
    clips = run_kfac_beside_the_formula("eigen", kl_clip=1e-3)
    assert min(clips) < 0.5  # the clip is active, so the unclipped rule would fail the step checks


def test_kfac_defaults_are_factored_damping_without_a_clip() -> None:
    assert run_kfac_beside_the_formula("factored", kl_clip=None) == [1.0] * 4
    optimizer = KFAC(kfac_net())
    assert (optimizer.damping_mode, optimizer.kl_clip) == ("factored", None)


def test_kfac_kl_clip_on_factored_damping() -> None:
    clips = run_kfac_beside_the_formula("factored", kl_clip=1e-3)
    assert min(clips) < 0.5


def test_madam_state_saved_before_the_clamp_loads_with_the_reference_bound() -> None:
    p = nn.Parameter(torch.tensor([0.5, -0.8], dtype=torch.float64))
    saved = Madam([p]).state_dict()
    del saved["param_groups"][0]["g_bound"]
    optimizer = Madam([p], g_bound=3.0)
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["g_bound"] == 10.0
