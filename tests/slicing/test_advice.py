"""probe advise / lp.advise: breakdown scales against closed forms and plain loops, and the rates against real steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.errors import ProbeError
from landscape_probe.losses import loss_function

THRESHOLD = 0.5


def deep_linear() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 3, bias=False)).double()
    generator = torch.Generator().manual_seed(2)
    # float32 values: data sets are held in float32 (and cast to float64 for the slice), so that both sides agree
    x = torch.randn(30, 4, generator=generator).double()
    return net, (x, torch.randn(30, 3, generator=generator).double())


def loss_at(net: nn.Module, weights: dict[str, torch.Tensor], data) -> torch.Tensor:
    x, y = data
    return loss_function("mse")(torch.func.functional_call(net, weights, (x,)), y)


def gradient_at(net: nn.Module, weights: dict[str, torch.Tensor], data) -> dict[str, torch.Tensor]:
    leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
    parts = torch.autograd.grad(loss_at(net, leaves, data), list(leaves.values()))
    return dict(zip(leaves, parts, strict=True))


@pytest.fixture(scope="module")
def linear_advice():
    net, data = deep_linear()
    advice = lp.advise(net, data, threshold=THRESHOLD, min_scale=1e-4, max_scale=10.0, points=80, device="cpu",
                       dtype="float64", probe_size=30)
    return net, data, advice


def test_each_layer_alone_matches_its_closed_form(linear_advice) -> None:
    # With the other layer fixed the loss is quadratic in W_l, so g_l(t) − g_l(0) = t·H_ll u_l exactly and
    # κ_l = θ·||g_l|| / ||H_ll u_l|| with u_l = −||W_l||/||g_l||·g_l (H_ll from the dense float64 Hessian).
    net, data, advice = linear_advice
    weights = {k: v.detach() for k, v in net.named_parameters()}
    gradient = gradient_at(net, weights, data)
    for i, name in enumerate(advice.layer_names):
        shape = weights[name].shape

        def alone(flat: torch.Tensor, name=name, shape=shape) -> torch.Tensor:
            return loss_at(net, {**weights, name: flat.view(shape)}, data)

        block = torch.func.hessian(alone)(weights[name].reshape(-1))
        g = gradient[name].reshape(-1)
        u = -weights[name].norm() / g.norm() * g
        expected = THRESHOLD * float(g.norm()) / float((block @ u).norm())
        assert advice.alone[i] == pytest.approx(expected, rel=1e-9)
        assert advice.weight_norms[i] == pytest.approx(float(weights[name].norm()), rel=1e-12)
        assert advice.gradient_norms[i] == pytest.approx(float(g.norm()), rel=1e-12)
    assert advice.sizes.tolist() == [20, 15]


def test_all_layers_together_matches_a_plain_bisection(linear_advice) -> None:
    net, data, advice = linear_advice
    weights = {k: v.detach() for k, v in net.named_parameters()}
    g0 = gradient_at(net, weights, data)
    g0_norm = math.sqrt(sum(float((g ** 2).sum()) for g in g0.values()))

    def change(t: float) -> float:
        moved = {k: w - t * w.norm() / g0[k].norm() * g0[k] for k, w in weights.items()}
        gt = gradient_at(net, moved, data)
        return math.sqrt(sum(float(((gt[k] - g0[k]) ** 2).sum()) for k in g0)) / g0_norm

    low, high = 1e-4, 10.0
    assert change(low) < THRESHOLD < change(high)
    for _ in range(60):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if change(middle) < THRESHOLD else (low, middle)
    assert advice.together == pytest.approx(low, rel=2e-3)  # log-log interpolation between 80 scales


def test_the_sgd_rates_take_each_layer_exactly_the_advised_relative_step(linear_advice) -> None:
    net, data, advice = linear_advice
    for rates, steps in ((advice.sgd_rates_alone, advice.alone),
                         (advice.sgd_rates_together, np.full(2, advice.together))):
        stepped = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 3, bias=False)).double()
        stepped.load_state_dict(net.state_dict())
        params = dict(stepped.named_parameters())
        optimizer = torch.optim.SGD([{"params": [params[name]], "lr": float(rate)}
                                     for name, rate in zip(advice.layer_names, rates, strict=True)])
        before = {k: v.detach().clone() for k, v in params.items()}
        optimizer.zero_grad()
        loss_function("mse")(stepped(data[0]), data[1]).backward()
        optimizer.step()
        for name, step in zip(advice.layer_names, steps, strict=True):
            moved = float((params[name].detach() - before[name]).norm() / before[name].norm())
            assert moved == pytest.approx(step, rel=1e-12)
    assert advice.sgd_lr == pytest.approx(min(advice.sgd_rates_together))


def test_fromage_and_adam_first_steps_take_the_advised_relative_step(linear_advice) -> None:
    from landscape_probe.optim.fromage import Fromage

    net, data, advice = linear_advice
    shrink = math.sqrt(1 + advice.together**2)
    for make, undo in ((lambda p: Fromage(p, lr=advice.fromage_lr), shrink),
                       (lambda p: torch.optim.Adam(p, lr=advice.adam_lr, eps=1e-300), None)):
        stepped = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 3, bias=False)).double()
        stepped.load_state_dict(net.state_dict())
        params = dict(stepped.named_parameters())
        before = {k: v.detach().clone() for k, v in params.items()}
        optimizer = make(list(params.values()))
        loss_function("mse")(stepped(data[0]), data[1]).backward()
        optimizer.step()
        if undo is not None:  # Fromage: W ← (W − lr·||W||/||g||·g)/√(1 + lr²); its gradient part is lr, relative
            moved = [float((undo * params[n].detach() - before[n]).norm() / before[n].norm())
                     for n in advice.layer_names]
            np.testing.assert_allclose(moved, [advice.together] * 2, rtol=1e-12)
        else:
            moved = [float((params[n].detach() - before[n]).norm() / before[n].norm()) for n in advice.layer_names]  # Adam's first step is lr·sign(g): the layer with the smallest ||W_l||/√n_l moves by exactly t*
            assert max(moved) == pytest.approx(advice.together, rel=1e-9)


def test_lr_for_covers_the_rules_and_refuses_the_rest(linear_advice) -> None:
    _, _, advice = linear_advice
    assert advice.lr_for("fromage") == advice.lr_for("lars") == advice.fromage_lr
    assert advice.lr_for("sgd") == advice.sgd_lr and advice.lr_for("adamw") == advice.adam_lr
    with pytest.raises(ProbeError, match="no rule for 'kfac'"):
        advice.lr_for("kfac")


def test_a_threshold_never_reached_gives_no_rate() -> None:
    net, data = deep_linear()
    advice = lp.advise(net, data, threshold=1e6, max_scale=0.01, points=5, device="cpu", dtype="float64")
    assert math.isnan(advice.together) and "not reached" in advice.summary()
    with pytest.raises(ProbeError, match="never reached"):
        advice.lr_for("sgd")


@pytest.mark.parametrize(("keywords", "words"), [({"threshold": 0}, "positive"), ({"direction": "random"}, "direction")])
def test_bad_settings_are_one_sentence(keywords, words) -> None:
    net, data = deep_linear()
    with pytest.raises(ProbeError, match=words):
        lp.advise(net, data, device="cpu", **keywords)


def test_cli_prints_and_writes_json(tmp_path) -> None:
    from typer.testing import CliRunner

    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2
    from tests.landscape.test_probe_hessian import digits_checkpoint

    runner = CliRunner()
    checkpoint = digits_checkpoint(tmp_path)
    out = tmp_path / "advice.json"
    result = runner.invoke(app, ["advise", str(checkpoint), "--probe-size", "64", "--points", "12", "--device", "cpu",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert f"lr = {document['fromage_lr']:.3g}" in result.output and "(c) Adam" in result.output
    assert set(document["layers"]) == {"hidden.0.weight", "output.weight"}
    again = runner.invoke(app, ["advise", str(checkpoint), "--json", str(out), "--device", "cpu"])
    assert "already exists" in one_sentence_exit_2(again)
    bad = runner.invoke(app, ["advise", str(checkpoint), "--threshold", "-1", "--device", "cpu"])
    assert "threshold" in one_sentence_exit_2(bad)
