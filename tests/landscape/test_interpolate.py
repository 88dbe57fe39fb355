"""probe interpolate / lp.interpolate: each number against a closed form or a plain loop of its own."""

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
from landscape_probe.errors import ProbeError
from landscape_probe.forward import ForwardEvaluator
from landscape_probe.landscape.grid import parse_range
from landscape_probe.models.zoo import build_model
from tests.cli_outcomes import one_sentence_exit_2

runner = CliRunner()


def _pair_with_batch_norm() -> tuple[nn.Module, nn.Module]:
    """Two nets whose weights and batch-norm running statistics differ."""
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(16, 5) * (1 + seed))
        nets.append(net.eval())
    return nets[0], nets[1]


def _data(n: int = 40, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(n, 5, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def test_the_ends_are_the_two_networks_exactly_running_statistics_included() -> None:
    a, b = _pair_with_batch_norm()
    x, y = _data()
    result = lp.interpolate(a, b, (x, y), alphas=[0.25, 0.5], device="cpu", dtype="float64")
    assert result.alphas.tolist() == [0.0, 0.25, 0.5, 1.0]
    for net, end in ((a, result.loss_a), (b, result.loss_b)):
        with torch.no_grad():
            direct = float(torch.nn.functional.cross_entropy(copy.deepcopy(net).double()(x.double()), y))
        assert end == direct
    assert result.loss[0] == result.loss_a and result.loss[-1] == result.loss_b
    assert result.relative_function_change[0] == 0.0


def test_every_point_equals_a_plain_loop_that_loads_the_mixed_state_dict() -> None:
    a, b = _pair_with_batch_norm()
    x, y = _data()
    result = lp.interpolate(a, b, (x, y), range="-0.5:1.5:9", device="cpu", dtype="float64")
    reference_outputs, plain_losses = None, []
    for alpha, loss, accuracy, change in zip(result.alphas, result.loss, result.accuracy,
                                             result.relative_function_change, strict=True):
        mixed = copy.deepcopy(a).double()
        state = {k: (1 - alpha) * v.double() + alpha * b.state_dict()[k].double() if v.is_floating_point() else v
                 for k, v in a.state_dict().items()}
        mixed.load_state_dict(state)
        with torch.no_grad():
            outputs = mixed(x.double())
        reference_outputs = outputs if alpha == 0 else reference_outputs
        plain_losses.append(float(torch.nn.functional.cross_entropy(outputs, y)))
        assert loss == pytest.approx(plain_losses[-1], rel=1e-12)
        assert accuracy == pytest.approx(float((outputs.argmax(1) == y).double().mean()))
        if reference_outputs is not None:
            expected = float((outputs - reference_outputs).norm() / reference_outputs.norm())
            assert change == pytest.approx(expected, rel=1e-10, abs=1e-14)
    on_path = [loss for alpha, loss in zip(result.alphas, plain_losses) if 0 <= alpha <= 1]
    ends = max(plain_losses[list(result.alphas).index(0.0)], plain_losses[list(result.alphas).index(1.0)])
    assert result.barrier_height == pytest.approx(max(0.0, max(on_path) - ends))


def test_a_linear_model_with_mse_follows_its_closed_form() -> None:
    torch.manual_seed(3)
    a, b = nn.Linear(4, 2).double(), nn.Linear(4, 2).double()
    x, y = torch.randn(30, 4), torch.randn(30, 2)  # data sets hold float32; the closed form uses the same values
    result = lp.interpolate(a, b, (x, y), range="-1:2:13", device="cpu", dtype="float64")
    xa = np.hstack([x.double().numpy(), np.ones((30, 1))])
    wa = np.hstack([a.weight.detach().numpy(), a.bias.detach().numpy()[:, None]])
    wb = np.hstack([b.weight.detach().numpy(), b.bias.detach().numpy()[:, None]])
    for alpha, loss, change in zip(result.alphas, result.loss, result.relative_function_change, strict=True):
        outputs = xa @ ((1 - alpha) * wa + alpha * wb).T
        assert loss == pytest.approx(np.mean((outputs - y.double().numpy()) ** 2), rel=1e-12)
        expected = abs(alpha) * np.linalg.norm(xa @ (wb - wa).T) / np.linalg.norm(xa @ wa.T)
        assert change == pytest.approx(expected, rel=1e-10, abs=1e-14)
    assert result.accuracy is None and not result.classification
    kappa = np.linalg.norm(b.weight.detach().numpy() - a.weight.detach().numpy()) / np.linalg.norm(a.weight.detach().numpy())
    assert result.layer_names == ["weight"] and result.kappa[0] == pytest.approx(kappa, rel=1e-12)
    assert result.drt_step == pytest.approx(kappa, rel=1e-12)
    assert result.drt_prediction == pytest.approx(np.abs(result.alphas) * kappa, rel=1e-12)
    assert result.step_norm == pytest.approx(np.linalg.norm(wb - wa), rel=1e-12)


def test_a_barrier_between_a_network_and_its_permutation() -> None:
    """Permuting hidden units leaves the function unchanged, but the midpoint is a different network."""
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    b = copy.deepcopy(a)
    order = torch.randperm(16)
    with torch.no_grad():
        b[0].weight.copy_(a[0].weight[order])
        b[0].bias.copy_(a[0].bias[order])
        b[2].weight.copy_(a[2].weight[:, order])
    x, y = _data(200)
    with torch.no_grad():
        y = a(x).argmax(1)  # A and B fit these labels perfectly, the mixture does not
    result = lp.interpolate(a, b, (x, y), range="0:1:11", device="cpu", dtype="float64")
    assert result.loss_a == pytest.approx(result.loss_b, rel=1e-12)
    assert result.barrier_height == pytest.approx(result.loss.max() - result.loss_a) and result.barrier_height > 0
    assert result.drt_step == pytest.approx(np.prod(1 + result.kappa) - 1)


def test_the_users_modules_are_left_as_they_were() -> None:
    a, b = _pair_with_batch_norm()
    before = {k: v.clone() for k, v in a.state_dict().items()}
    lp.interpolate(a, b, _data(), alphas=[0.5], device="cpu", dtype="float64")
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    assert next(a.parameters()).dtype == torch.float32 and not a.training


def test_a_torchscript_module_gives_the_same_numbers_as_its_source() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x, y = _data()
    plain, scripted = ForwardEvaluator(net, x, y, "cross_entropy"), ForwardEvaluator(torch.jit.script(net), x, y,
                                                                                         "cross_entropy")
    state = {k: v * 1.5 for k, v in plain.base.items()}
    assert plain.evaluate(state).loss == pytest.approx(scripted.evaluate(state).loss, rel=1e-6)
    assert scripted.evaluate(scripted.base).loss == pytest.approx(plain.evaluate(plain.base).loss, rel=1e-6)


@pytest.mark.parametrize("text", ["0:1", "1:0:5", "0:1:1", "a:b:c", "0:inf:3"])
def test_a_bad_range_is_one_sentence(text: str) -> None:
    with pytest.raises(ProbeError, match="--range"):
        parse_range(text)


def _checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    paths = []
    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 16}
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.pt"
        save_checkpoint(path, build_model(args), args, step=0, data={"name": "digits", "seed": 0}, config={})
        paths.append(path)
    return paths[0], paths[1]


def test_cli_writes_a_file_that_show_plot_export_and_load_read(tmp_path: Path) -> None:
    a, b = _checkpoints(tmp_path)
    out = tmp_path / "ab.h5"
    result = runner.invoke(app, ["interpolate", str(a), str(b), "--range", "-0.5:1.5:5", "--probe-size", "64",
                                 "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "barrier height" in result.output and (tmp_path / "ab_plots" / "ab_interpolation.png").exists()
    loaded = lp.load(out)
    assert isinstance(loaded, lp.InterpolationResult) and loaded.alphas.tolist() == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert loaded.provenance["command_line"].startswith("probe interpolate")
    assert loaded.settings["probe_size"] == 64 and loaded.summary() == loaded.summary()
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "barrier height" in shown.output
    assert runner.invoke(app, ["plot", str(out), "-o", str(tmp_path / "again")]).exit_code == 0
    assert (tmp_path / "again" / "ab_interpolation.png").exists()
    assert runner.invoke(app, ["export", str(out), "--json", str(tmp_path / "ab.json")]).exit_code == 0
    frame = loaded.to_pandas()
    assert frame.index.name == "alpha" and frame.attrs["barrier_height"] == loaded.barrier_height


def test_cli_refuses_different_architectures_and_bad_ranges_in_one_sentence(tmp_path: Path) -> None:
    a, _ = _checkpoints(tmp_path)
    other = Path(__file__).resolve().parents[2] / "sample_checkpoints" / "mlp16_digits.pt"
    text = one_sentence_exit_2(runner.invoke(app, ["interpolate", str(a), str(other), "-o", str(tmp_path / "x.h5")]))
    assert "different parameters" in text and not (tmp_path / "x.h5").exists()
    text = one_sentence_exit_2(runner.invoke(app, ["interpolate", str(a), str(a), "--range", "2:1:3"]))
    assert "--range" in text
