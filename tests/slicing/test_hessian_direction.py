"""--direction hessian:K and hessian:FILE.h5:K against the dense float64 Hessian of a tiny MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.errors import ProbeError
from landscape_probe.curvature.hessian_direction import parse_hessian_direction
from tests.landscape.test_probe_hessian import dense_hessian, digits_checkpoint, net_and_data

NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]


def dense_eigenvector(net: nn.Module, data, k: int) -> tuple[float, np.ndarray]:
    """λ_k and v_k of the dense Hessian (k = 1 the largest), v_k turned so that gᵀv ≤ 0."""
    x, y = data
    values, vectors = torch.linalg.eigh(dense_hessian(net, data, NAMES))
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    gradient = torch.cat([dict(net.named_parameters())[name].grad.reshape(-1) for name in NAMES])
    vector = vectors[:, -k]
    return float(values[-k]), (vector if float(gradient @ vector) <= 0 else -vector).numpy()


def sliced(net: nn.Module, data, direction: str, scales=(0.5,)):
    """The engine's slice with u = v (no scaling) and Lanczos run to 1e-10 (lp.slice keeps its 1e-4 default)."""
    from landscape_probe.slicing.config import SliceConfig
    from landscape_probe.slicing.engine import run_slice

    config = SliceConfig(direction=direction, scaling="none", scales=tuple(scales), include_1d=True, probe_size=20,
                         device="cpu", dtype="float64", power_iterations=60, power_tolerance=1e-10)
    return run_slice(net, *data, "cross_entropy", config)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_computed_direction_is_the_kth_eigenvector(k) -> None:
    net, data = net_and_data()
    value, vector = dense_eigenvector(net, data, k)
    result = sliced(net, data, f"hessian:{k}", scales=(0.5,))
    # With scaling none, u = v: uᵀHu is λ_k and g·u = gᵀv_k, ≤ 0 by the sign rule.
    assert result.whole.curvature == pytest.approx(value, abs=1e-8)
    x, y = data
    gradient = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    expected_slope = float(torch.cat([g.reshape(-1) for g in gradient]) @ torch.from_numpy(vector))
    assert result.whole.slope == pytest.approx(expected_slope, abs=1e-8) and result.whole.slope <= 0
    # The measured loss at t = 0.5 is that of W + 0.5·v, computed by a plain functional call.
    flat = torch.from_numpy(vector)
    pieces, start = {}, 0
    for name, param in net.named_parameters():
        pieces[name] = param.detach() + 0.5 * flat[start:start + param.numel()].view_as(param)
        start += param.numel()
    moved = nn.functional.cross_entropy(torch.func.functional_call(net, pieces, (x,)), y)
    assert result.whole.loss[0] == pytest.approx(float(moved), rel=1e-12)


def test_file_direction_equals_the_computed_one(tmp_path) -> None:
    net, data = net_and_data()
    saved = lp.hessian(net, data, top_k=3, tolerance=1e-10, iterations=60, include_1d=True, probe_size=20,
                       device="cpu", dtype="float64", trace_samples=4, density_runs=1, density_steps=4)
    path = saved.save(tmp_path / "h.h5")
    from_file = sliced(net, data, f"hessian:{path}:3")
    computed = sliced(net, data, "hessian:3")
    assert from_file.whole.curvature == pytest.approx(saved.eigenvalues[2], abs=1e-8)
    assert from_file.whole.slope == pytest.approx(computed.whole.slope, abs=1e-8)
    np.testing.assert_allclose(from_file.whole.loss, computed.whole.loss, rtol=1e-10)


@pytest.mark.parametrize(("text", "expected"), [
    ("hessian:1", (None, 1)), ("hessian:12", (None, 12)), ("hessian:a/b.h5:2", ("a/b.h5", 2)),
    ("hessian:C:/x/h.h5:3", ("C:/x/h.h5", 3)),
])
def test_parse(text, expected) -> None:
    assert parse_hessian_direction(text) == expected


@pytest.mark.parametrize("text", ["hessian", "hessian:", "hessian:0", "hessian:h.h5", "hessian:h.h5:-1", "hessian:x"])
def test_bad_forms_are_refused(text) -> None:
    net, data = net_and_data()
    with pytest.raises(ProbeError, match="hessian:K"):
        sliced(net, data, text)


def test_file_over_other_layers_is_refused(tmp_path) -> None:
    net, data = net_and_data()
    path = lp.hessian(net, data, top_k=1, iterations=20, probe_size=20, device="cpu", trace_samples=2,
                      density_runs=1, density_steps=4).save(tmp_path / "h.h5")  # weights only, no biases
    with pytest.raises(ProbeError, match="other layers"):
        sliced(net, data, f"hessian:{path}:1")


def test_cli_reads_the_file_of_its_checkpoint_and_refuses_others(tmp_path) -> None:
    from typer.testing import CliRunner

    from landscape_probe.cli import app
    from tests.cli_outcomes import one_sentence_exit_2

    runner = CliRunner()
    checkpoint = digits_checkpoint(tmp_path)
    common = ["--probe-size", "32", "--device", "cpu"]
    made = runner.invoke(app, ["hessian", str(checkpoint), "--top-k", "2", "--iterations", "30", "--trace-samples",
                               "4", "--density-runs", "1", "--density-steps", "4", *common, "-o",
                               str(tmp_path / "h.h5"), "--no-plots"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "s.h5"
    result = runner.invoke(app, ["slice", str(checkpoint), "--direction", f"hessian:{tmp_path / 'h.h5'}:2",
                                 "--scaling", "none", "--scales", "0.1,1", *common, "-o", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert lp.load(out).whole.curvature == pytest.approx(lp.load(tmp_path / "h.h5").eigenvalues[1], rel=1e-3)

    for args, words in [
        (["--direction", f"hessian:{tmp_path / 'h.h5'}:3"], "--top-k 3"),
        (["--direction", f"hessian:{tmp_path / 'missing.h5'}:1"], "does not exist"),
        (["--direction", f"hessian:{out}:1"], "not a Hessian spectrum"),
    ]:
        bad = tmp_path / "bad.h5"
        assert words in one_sentence_exit_2(runner.invoke(app, ["slice", str(checkpoint), *args, *common, "-o",
                                                                str(bad)]))
        assert not bad.exists()
    other = tmp_path / "other"
    other.mkdir()
    torch.manual_seed(9)
    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}
    save_checkpoint(other / "m.pt", build_model(args), args, step=0, data={"name": "digits", "seed": 0}, config={})
    refused = runner.invoke(app, ["slice", str(other / "m.pt"), "--direction", f"hessian:{tmp_path / 'h.h5'}:1",
                                  *common, "-o", str(tmp_path / "bad.h5")])
    assert "another checkpoint" in one_sentence_exit_2(refused)


def test_plane_on_the_top_two_eigenvectors_is_the_dense_quadratic_near_w() -> None:
    net, data = net_and_data()
    result = lp.plane(net, data, x="-0.001:0.001:3", y="-0.001:0.001:3", direction_x="hessian:1",
                      direction_y="hessian:2", include_1d=True, probe_size=20, device="cpu", dtype="float64",
                      power_iterations=60)
    (l1, v1), (l2, v2) = dense_eigenvector(net, data, 1), dense_eigenvector(net, data, 2)
    np.testing.assert_allclose(result.direction_norms, [1.0, 1.0], rtol=1e-12)
    assert abs(result.direction_cosine) < 1e-6
    x, y = data
    gradient = torch.autograd.grad(nn.functional.cross_entropy(net(x), y), list(net.parameters()))
    g = torch.cat([part.reshape(-1) for part in gradient]).numpy()
    for i, b in enumerate(result.y_coordinates):
        for j, a in enumerate(result.x_coordinates):
            taylor = result.loss_at_zero + g @ (a * v1 + b * v2) + 0.5 * (l1 * a * a + l2 * b * b)
            # Lanczos stops at residual 1e-4·|λ|, so v is off by ~1e-4 and g·Δv·a by ~1e-8
            assert result.loss[i, j] == pytest.approx(taylor, abs=1e-7)
    # Second differences along each axis are the curvatures vᵀHv: λ₁ and λ₂ (to the Ritz values' r²/gap).
    h, loss = 1e-3, result.loss
    assert (loss[1, 0] + loss[1, 2] - 2 * loss[1, 1]) / h**2 == pytest.approx(l1, rel=1e-5)
    assert (loss[0, 1] + loss[2, 1] - 2 * loss[1, 1]) / h**2 == pytest.approx(l2, rel=1e-5)


def test_plane_refuses_the_same_hessian_direction_twice() -> None:
    net, data = net_and_data()
    with pytest.raises(ProbeError, match="spans a line"):
        lp.plane(net, data, direction_x="hessian:1", direction_y="hessian:1", device="cpu")
