"""Every command on CUDA gives the CPU's numbers within float32 tolerance (run with ``pytest -m gpu``).

Skipped where no CUDA GPU is visible, which is the case in CI; run them on a
GPU machine with ``python -m pytest -m gpu tests/test_gpu.py``. Each test
does the same work on ``cpu`` and ``cuda`` and compares what is recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.cli import app

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SAMPLES = Path(__file__).resolve().parents[1] / "sample_checkpoints"
MEASURED = (
    "loss", "relative_function_change", "relative_gradient_change", "step_norm", "kappa",
    "drt_prediction", "euclidean_gradient_prediction",
)


def _close(cpu: np.ndarray, cuda: np.ndarray, rtol: float = 2e-3, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(np.asarray(cuda, dtype=np.float64), np.asarray(cpu, dtype=np.float64), rtol=rtol, atol=atol)


def _same_slice(cpu: lp.SliceResult, cuda: lp.SliceResult) -> None:
    for name in MEASURED:
        _close(getattr(cpu, name), getattr(cuda, name))
    _close(cpu.lambda_max, cuda.lambda_max, rtol=1e-2)
    _close(cpu.gradient_norm, cuda.gradient_norm)
    for layer in cpu.layers:
        for name in ("relative_function_change", "relative_gradient_change", "drt_prediction"):
            _close(getattr(cpu.layers[layer], name), getattr(cuda.layers[layer], name))


@pytest.mark.parametrize("direction", ["gradient", "random"])
def test_slice_of_the_deep_sample_on_cuda_matches_cpu(direction: str) -> None:
    kwargs = dict(probe_size=256, points=7, max_scale=0.5, direction=direction, seed=3)
    cpu = lp.slice(SAMPLES / "mlp16_digits.pt", device="cpu", **kwargs)
    cuda = lp.slice(SAMPLES / "mlp16_digits.pt", device="cuda", **kwargs)
    _same_slice(cpu, cuda)


def test_per_layer_slice_on_cuda_matches_cpu() -> None:
    kwargs = dict(probe_size=256, points=5, max_scale=0.5, layers=True)
    cpu = lp.slice(SAMPLES / "mlp2_digits.pt", device="cpu", **kwargs)
    cuda = lp.slice(SAMPLES / "mlp2_digits.pt", device="cuda", **kwargs)
    assert sorted(cuda.layers) == sorted(cpu.layers) and cuda.layers
    _same_slice(cpu, cuda)


def test_training_on_cuda_matches_cpu_and_its_checkpoint_slices_on_either(tmp_path: Path) -> None:
    kwargs = dict(optimizers=("sgd", "fromage"), epochs=1, depth=2, width=16, diagnostics_every=5)
    cpu = lp.train("mlp", "digits", device="cpu", **kwargs)
    cuda = lp.train("mlp", "digits", device="cuda", output=tmp_path / "runs", **kwargs)
    for run_cpu, run_cuda in zip(cpu.runs, cuda.runs, strict=True):
        assert run_cpu.name == run_cuda.name
        _close(run_cpu.loss, run_cuda.loss, rtol=1e-3)
        _close(run_cpu.weight_norm, run_cuda.weight_norm, rtol=1e-4)
        _close(run_cpu.epoch_test_accuracy, run_cuda.epoch_test_accuracy, atol=1e-2)
    checkpoint = next((tmp_path / "runs").glob("fromage*/checkpoint.pt"))
    on_cpu = lp.slice(checkpoint, device="cpu", probe_size=128, points=4)
    on_cuda = lp.slice(checkpoint, device="cuda", probe_size=128, points=4)
    _same_slice(on_cpu, on_cuda)


def test_cnn_slice_on_cuda_matches_cpu(tmp_path: Path) -> None:
    lp.train("cnn:depth=2,channels=4", "digits", optimizers="adam", epochs=1, device="cpu", output=tmp_path / "cnn")
    checkpoint = next((tmp_path / "cnn").glob("*/checkpoint.pt"))
    kwargs = dict(probe_size=128, points=5, max_scale=0.3, layers=True)
    _same_slice(lp.slice(checkpoint, device="cpu", **kwargs), lp.slice(checkpoint, device="cuda", **kwargs))


def test_training_probe_follows_a_loop_on_cuda(tmp_path: Path) -> None:
    def run(device: str) -> lp.TrainResult:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)).to(device)
        x = torch.randn(128, 10, generator=torch.Generator().manual_seed(1)).to(device)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        probe = lp.TrainingProbe(model, optimizer, every=4, data=(x[:64], y[:64]))
        for step in range(12):
            batch = slice(step * 8 % 120, step * 8 % 120 + 8)
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            probe.step(loss)
        return probe.result()

    cpu, cuda = run("cpu"), run("cuda")
    for name in ("loss", "weight_norm", "gradient_norm"):
        _close(getattr(cpu.runs[0], name), getattr(cuda.runs[0], name), rtol=1e-4)


def test_cli_slice_and_train_with_device_cuda(tmp_path: Path) -> None:
    runner = CliRunner()
    sliced = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--device", "cuda", "--points", "3",
                                 "--probe-size", "64", "--output", str(tmp_path / "s.h5"), "--no-plots"])
    assert sliced.exit_code == 0, sliced.output
    assert lp.load(tmp_path / "s.h5").config.device.startswith("cuda")
    trained = runner.invoke(app, ["train", "--device", "cuda", "--optimizer", "adam", "--depth", "2", "--epochs", "1",
                                  "--output", str(tmp_path / "t"), "--no-plots"])
    assert trained.exit_code == 0, trained.output


def _synchronisations_of_training(steps: int) -> int:
    """Host–device synchronisations that torch reports while ``lp.train`` takes ``steps`` steps on CUDA."""
    import warnings

    from landscape_probe.data.datasets import load_dataset

    examples = len(load_dataset("digits").x_train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            lp.train("mlp", "digits", optimizers="sgd", epochs=1, batch_size=-(-examples // steps),
                     diagnostics_every=0, device="cuda")
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_a_training_step_does_not_wait_for_the_gpu() -> None:
    """No synchronisation per step: the batch order is moved once an epoch, and the losses (divergence
    included) and records are read in blocks of 64 steps, so 60 more steps add a block or two."""
    few, many = _synchronisations_of_training(20), _synchronisations_of_training(80)
    assert few > 0, "no synchronisation reported: the sync debug mode caught nothing (the records are read back)"
    assert (many - few) / 60 <= 0.1, f"{few} synchronisations in 20 steps, {many} in 80"
