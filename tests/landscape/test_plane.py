"""probe plane / lp.plane: every cell against a plain loop or a closed form; resuming; the CLI."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.cli import app
from landscape_probe.curvature.hessian import gaussian_like
from landscape_probe.errors import ProbeError
from landscape_probe.landscape import plane as plane_module
from landscape_probe.landscape import plane_grid as plane_grid_module
from landscape_probe.forward import ForwardEvaluator
from landscape_probe.models.zoo import build_model
from landscape_probe.slicing.directions import filter_normalize
from tests.cli_outcomes import one_sentence_exit_2

runner = CliRunner()


def _random_directions(model: nn.Module, names: list[str], seed: int) -> tuple[dict, dict]:
    """The two directions lp.plane draws: seeded Gaussians, filter-normalised against the weights."""
    base = {k: v.detach() for k, v in model.named_parameters() if k in names}
    return (filter_normalize(gaussian_like(base, seed), base), filter_normalize(gaussian_like(base, seed + 1), base))


def _net_and_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    generator = torch.Generator().manual_seed(2)
    return net, (torch.randn(40, 5, generator=generator), torch.randint(0, 3, (40,), generator=generator))


def test_a_non_square_grid_puts_every_value_at_its_coordinates() -> None:
    net, (x, y) = _net_and_data()
    result = lp.plane(net, (x, y), x="-1:1:5", y="0:0.5:3", device="cpu", dtype="float64", seed=4)
    assert result.loss.shape == (3, 5) and result.done.all() and result.complete
    d1, d2 = _random_directions(net, ["0.weight", "2.weight"], 4)
    for i, b in enumerate(result.y_coordinates):
        for j, a in enumerate(result.x_coordinates):
            moved = copy.deepcopy(net)
            with torch.no_grad():
                for name, param in moved.named_parameters():
                    if name in d1:
                        param.add_(a * d1[name] + b * d2[name])
                outputs = moved(x.double())
            assert result.loss[i, j] == pytest.approx(float(nn.functional.cross_entropy(outputs, y)), rel=1e-10)
            assert result.accuracy[i, j] == pytest.approx(float((outputs.argmax(1) == y).double().mean()))
    assert result.loss[result.y_coordinates == 0, result.x_coordinates == 0][0] == pytest.approx(result.loss_at_zero)
    assert result.relative_function_change[0, 2] == 0.0
    assert result.layer_names == ["0.weight", "2.weight"]


def test_the_relative_gradient_change_and_its_predictions_follow_the_closed_form_of_a_linear_model() -> None:
    """MSE of f(x) = Wx: g(W + Δ) − g(W) = (2/(N·m)) Δ X Xᵀ, and λ_max = (2/(N·m)) σ_max(X Xᵀ)."""
    torch.manual_seed(1)
    net = nn.Linear(4, 2, bias=False).double()
    x, y = torch.randn(50, 4), torch.randn(50, 2)
    result = lp.plane(net, (x, y), x="-0.5:1:4", y="-1:1:3", measure="gradient", device="cpu", dtype="float64",
                      power_iterations=200, seed=7)
    xs, ys, w = x.double().numpy().T, y.double().numpy().T, net.weight.detach().numpy()
    scale = 2 / (50 * 2)
    gradient = scale * (w @ xs - ys) @ xs.T
    d1, d2 = (d["weight"].numpy() for d in _random_directions(net, ["weight"], 7))
    assert result.lambda_max == pytest.approx(scale * np.linalg.eigvalsh(xs @ xs.T).max(), rel=1e-6)
    assert result.gradient_norm == pytest.approx(np.linalg.norm(gradient), rel=1e-10)
    for i, b in enumerate(result.y_coordinates):
        for j, a in enumerate(result.x_coordinates):
            step = a * d1 + b * d2
            measured = np.linalg.norm(scale * step @ xs @ xs.T) / np.linalg.norm(gradient)
            assert result.relative_gradient_change[i, j] == pytest.approx(measured, rel=1e-8, abs=1e-12)
            assert result.drt_prediction[i, j] == pytest.approx(np.linalg.norm(step) / np.linalg.norm(w), rel=1e-10)
            euclidean = result.lambda_max * np.linalg.norm(step) / np.linalg.norm(gradient)
            assert result.euclidean_gradient_prediction[i, j] == pytest.approx(euclidean, rel=1e-10, abs=1e-14)


def test_an_interrupted_plane_resumes_to_the_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net, data = _net_and_data()
    whole = lp.plane(net, data, x="-1:1:4", y="-1:1:3", device="cpu", dtype="float64")
    fill_row, run, calls = plane_grid_module.PlaneGrid.fill_row, ForwardEvaluator.run, []

    def interrupted_in_row_2(self, with_accuracy=True):  # Ctrl-C at the second cell of the second row
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return run(self, with_accuracy)

    monkeypatch.setattr(ForwardEvaluator, "run", interrupted_in_row_2)
    out = tmp_path / "p.h5"
    with pytest.raises(KeyboardInterrupt):
        lp.plane(net, data, x="-1:1:4", y="-1:1:3", device="cpu", dtype="float64", output=out)
    partial = lp.load(out)
    assert not partial.complete and partial.done.sum() == 4 and np.isnan(partial.loss[~partial.done]).all()
    assert partial.done[0].all() and np.array_equal(partial.loss[0], whole.loss[0])
    monkeypatch.setattr(ForwardEvaluator, "run", run)
    assert plane_grid_module.PlaneGrid.fill_row is fill_row
    with pytest.raises(ProbeError, match="other settings"):
        lp.plane(net, data, x="-1:1:5", y="-1:1:3", device="cpu", dtype="float64", output=out, resume=True)
    resumed = lp.plane(net, data, x="-1:1:4", y="-1:1:3", device="cpu", dtype="float64", output=out, resume=True)
    assert resumed.complete and np.array_equal(resumed.loss, whole.loss)
    assert lp.load(out).complete
    with pytest.raises(ProbeError, match="already complete"):
        lp.plane(net, data, x="-1:1:4", y="-1:1:3", device="cpu", dtype="float64", output=out, resume=True)


@pytest.mark.parametrize(("options", "words"), [
    ({"direction_x": "eigen"}, "--direction-x"),
    ({"direction_x": "gradient", "direction_y": "gradient"}, "line, not a plane"),
    ({"measure": "hessian"}, "--measure"),
    ({"threshold": 0.0}, "--threshold"),
    ({"x": "1:-1:3"}, "--x"),
    ({"x": 5}, "--x must be START:STOP:COUNT"),
    ({"select": "nothing.*"}, "--select"),
])
def test_bad_settings_are_one_sentence(options: dict, words: str) -> None:
    net, data = _net_and_data()
    with pytest.raises(ProbeError, match=words):
        lp.plane(net, data, **{"x": "-1:1:3", "y": "-1:1:3", "device": "cpu", **options})


def test_python_takes_a_range_as_a_triple_too() -> None:
    net, data = _net_and_data()
    as_text = lp.plane(net, data, x="-1:1:3", y="-0.5:0.5:2", device="cpu", dtype="float64")
    as_triple = lp.plane(net, data, x=(-1, 1, 3), y=[-0.5, 0.5, 2], device="cpu", dtype="float64")
    np.testing.assert_array_equal(as_triple.x_coordinates, as_text.x_coordinates)
    np.testing.assert_array_equal(as_triple.loss, as_text.loss)


def test_cli_plane_writes_what_show_plot_and_pandas_read(tmp_path: Path) -> None:
    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 16}
    torch.manual_seed(0)
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(checkpoint, build_model(args), args, step=0, data={"name": "digits", "seed": 0}, config={})
    out = tmp_path / "m_plane.h5"
    result = runner.invoke(app, ["plane", str(checkpoint), "--x", "-1:1:3", "--y", "-1:1:4", "--probe-size", "64",
                                 "--measure", "gradient", "--direction-x", "gradient", "--device", "cpu",
                                 "--power-iterations", "10", "-o", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "m_plane_plots").iterdir())
    assert names == [f"m_plane_{n}.png" for n in ("loss_contour", "loss_heatmap", "loss_surface", "trust_region")]
    loaded = lp.load(out)
    assert isinstance(loaded, lp.PlaneResult) and loaded.loss.shape == (4, 3) and loaded.complete
    assert loaded.provenance["command_line"].startswith("probe plane")
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "agrees with the measurement" in shown.output
    frame = loaded.to_pandas()
    assert frame.loc[(loaded.y_coordinates[1], loaded.x_coordinates[2]), "loss"] == loaded.loss[1, 2]
    text = one_sentence_exit_2(runner.invoke(app, ["plane", str(checkpoint), "--direction-y", "hessian",
                                                   "-o", str(tmp_path / "bad.h5")]))
    assert "--direction-y" in text and not (tmp_path / "bad.h5").exists()


def test_packed_layers_move_the_model_with_one_write_and_keep_their_values() -> None:
    from landscape_probe.forward import ForwardEvaluator

    net, (x, y) = _net_and_data()
    evaluator = ForwardEvaluator(copy.deepcopy(net), x.double(), y, "cross_entropy")
    before = evaluator.run().loss
    flat = evaluator.pack(["0.weight", "2.weight"])
    assert flat is not None and flat.numel() == 5 * 8 + 8 * 3
    assert evaluator.run().loss == before  # re-homing keeps the values
    flat.mul_(0.5)  # one write: both weight matrices halved, the biases untouched
    halved = copy.deepcopy(net)
    with torch.no_grad():
        halved[0].weight.mul_(0.5)
        halved[2].weight.mul_(0.5)
        expected = float(nn.functional.cross_entropy(halved(x.double()), y))
    assert evaluator.run().loss == pytest.approx(expected, rel=1e-12)
    assert evaluator.pack(["0.weight", "nothing"]) is None
    assert ForwardEvaluator(torch.jit.script(net), x.double(), y, "cross_entropy").pack(["0.weight"]) is None


def test_a_torchscript_plane_equals_the_plane_of_its_source() -> None:
    net, data = _net_and_data()
    plain = lp.plane(net, data, x="-1:1:3", y="-1:1:3", device="cpu", dtype="float64", seed=2)
    scripted = lp.plane(torch.jit.script(net), data, x="-1:1:3", y="-1:1:3", device="cpu", dtype="float64", seed=2)
    np.testing.assert_allclose(scripted.loss, plain.loss, rtol=1e-12)
