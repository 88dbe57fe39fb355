"""TrainingProbe on a hand-written loop, against the same loop computing every record by hand."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.training.probe import TrainingProbe
from landscape_probe.training.result import TrainResult

STEPS, EVERY, LR, WEIGHT_DECAY = 5, 2, 0.05, 0.01


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 3, (40,), generator=generator)


def _noise_scale_by_hand(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """B_simple from one backward pass per example, in eval mode."""
    model.eval()
    rows = []
    for i in range(len(x)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    g = np.stack(rows)
    mean = g.mean(axis=0)
    return float(np.sum((g - mean) ** 2) / (len(g) - 1) / np.sum(mean**2))


def _loop(with_probe: bool) -> tuple[dict[str, list], TrainingProbe | None]:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    x, y = _data()
    batch = (x[:10], y[:10])
    probe = TrainingProbe(model, optimizer, every=EVERY, data=batch, sharpness_iterations=5) if with_probe else None
    expected: dict[str, list] = {key: [] for key in ("loss", "learning_rate", "gradient_norm", "weight_norm",
                                                      "relative_update", "gradient_noise_scale",
                                                      "effective_learning_rate", "spectral_shift",
                                                      "relative_update_spectral")}
    for step in range(STEPS):
        at_start = copy.deepcopy(model)  # W_s and the running statistics of that time
        before = {n: p.detach().clone() for n, p in model.named_parameters() if p.ndim >= 2}
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[8 * step : 8 * step + 8]), y[8 * step : 8 * step + 8])
        loss.backward()
        optimizer.step()
        if probe is not None:
            probe.step(loss)
        after = {n: p.detach() for n, p in model.named_parameters() if p.ndim >= 2}
        expected["loss"].append(loss.item())
        expected["learning_rate"].append(LR * 0.5 ** (step // 2))
        expected["gradient_norm"].append(math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters())))
        expected["weight_norm"].append([float(w.norm()) for w in before.values()])
        expected["relative_update"].append([float((after[n] - w).norm() / w.norm()) for n, w in before.items()])
        if step % EVERY == 0:
            expected["gradient_noise_scale"].append(_noise_scale_by_hand(at_start, *batch))
            rate = expected["learning_rate"][-1]
            expected["effective_learning_rate"].append([rate / float(before["0.weight"].norm()) ** 2])
            shifts = []
            for n, w in before.items():
                sigma = np.linalg.svd(w.numpy(), compute_uv=False)
                sigma_new = np.linalg.svd(after[n].numpy(), compute_uv=False)
                shifts.append(float(np.max(np.abs(sigma_new - sigma)) / np.sqrt(np.mean(sigma**2))))
            expected["spectral_shift"].append(shifts)
            expected["relative_update_spectral"].append(  # ‖ΔW‖₂ / ‖W‖₂, largest singular values in float64
                [float(torch.linalg.matrix_norm((after[n] - w).double(), ord=2)
                       / torch.linalg.matrix_norm(w.double(), ord=2)) for n, w in before.items()])
        scheduler.step()
    return expected, probe


def test_records_match_a_loop_that_computes_them_by_hand() -> None:
    expected, _ = _loop(with_probe=False)
    recorded, probe = _loop(with_probe=True)
    for name in expected:
        np.testing.assert_allclose(recorded[name], expected[name], rtol=1e-12, err_msg=f"{name}: the probe changed it")
    run = probe.result().runs[0]
    assert run.layer_names == ["0.weight", "3.weight"] and run.normalised_layer_names == ["0.weight"]
    assert run.records["diagnostic_steps"].tolist() == [0, 2, 4] and run.steps == STEPS
    for name, values in expected.items():
        np.testing.assert_allclose(run.records[name], values, rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(run.records["intrinsic_learning_rate"], [WEIGHT_DECAY * LR * f for f in (1, 0.5, 0.25)])
    assert np.all(np.isfinite(run.records["sharpness"]))


def test_saved_file_opens_with_probe_show_and_plot(tmp_path: Path) -> None:
    _, probe = _loop(with_probe=True)
    probe.epoch(train_loss=0.9, train_accuracy=0.6)
    path = probe.save(tmp_path / "mine.h5")
    shown = CliRunner().invoke(app, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "sgd" in shown.output and "0.9" in shown.output and "(nats)" in shown.output
    plotted = CliRunner().invoke(app, ["plot", str(path), "--output", str(tmp_path / "plots")])
    assert plotted.exit_code == 0, plotted.output
    read = TrainResult.load(path)
    assert read.runs[0].model_args == {"name": "custom", "class": "torch.nn.modules.container:Sequential"}
    assert read.runs[0].records["epoch_train_loss"].tolist() == [0.9]


def test_a_loss_function_of_ones_own_and_bad_arguments() -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = TrainingProbe(model, optimizer, every=1, loss=lambda out, target: (out - target).abs().mean(),
                          data=(torch.randn(4, 3), torch.randn(4, 1)), sharpness_iterations=2)
    loss = (model(torch.randn(4, 3)) - 1).abs().mean()
    loss.backward()
    optimizer.step()
    probe.step(loss)
    assert probe.result().loss_units == "units of the loss" and len(probe.result().runs[0].records["sharpness"]) == 1
    with pytest.raises(ProbeError, match="every"):
        TrainingProbe(model, optimizer, every=-1)
    with pytest.raises(ProbeError, match="loss"):
        TrainingProbe(model, optimizer, loss=3)
    with pytest.raises(ProbeError, match="pair"):
        TrainingProbe(model, optimizer, data=torch.zeros(3))


class _WithAux(nn.Module):
    """The plain model's logits, returned beside an auxiliary tensor (first) or in a dict."""

    def __init__(self, inner: nn.Module, as_dict: bool) -> None:
        super().__init__()
        self.inner, self.as_dict = inner, as_dict

    def forward(self, x: torch.Tensor):
        logits = self.inner(x)
        return {"features": x.sum(1), "logits": logits} if self.as_dict else (x.sum(1), logits)


@pytest.mark.parametrize(("as_dict", "key"), [(True, None), (False, "1")])
def test_output_key_gives_the_plain_models_diagnostics_and_leaves_the_loop_its_outputs(as_dict, key):
    x, y = _data()
    runs = []
    for wrapped in (False, True):
        model = _model()
        net = _WithAux(model, as_dict) if wrapped else model
        optimizer = torch.optim.SGD(net.parameters(), lr=LR)
        probe = TrainingProbe(net, optimizer, every=1, data=(x[:16], y[:16]), sharpness_iterations=6,
                              output_key=key if wrapped else None)
        for _ in range(3):
            optimizer.zero_grad()
            outputs = net(x)
            logits = (outputs["logits"] if as_dict else outputs[1]) if wrapped else outputs
            if wrapped:
                assert isinstance(outputs, dict if as_dict else tuple)  # the probe's selection is not left on
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            probe.step(loss)
        runs.append(probe.result())
    plain, wrapped = (result.runs[0].records for result in runs)
    for name in ("sharpness", "gradient_noise_scale", "spectral_shift", "step_over_breakdown", "loss"):
        np.testing.assert_allclose(wrapped[name], plain[name], rtol=1e-10, err_msg=name)
    assert runs[1].config["output_key"] == key
