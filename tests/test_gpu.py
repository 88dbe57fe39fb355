"""Every command on CUDA gives the CPU's numbers within float32 tolerance (run with ``pytest -m gpu``).

Skipped where no CUDA GPU is visible, which is the case in CI; run them on a
GPU machine with ``python -m pytest -m gpu tests/test_gpu.py``. Each test
does the same work on ``cpu`` and ``cuda`` and compares what is recorded.
``PROBE_GPU_TEST_DEVICE=cpu`` runs them with the CPU in CUDA's place (the
CUDA-only checks skipped), to try the tests themselves on a machine without one.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.cli import app

OTHER = os.environ.get("PROBE_GPU_TEST_DEVICE", "cuda")
"""The device compared with the CPU: CUDA, unless the tests themselves are being tried on a CPU."""

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(OTHER == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
only_on_cuda = pytest.mark.skipif(OTHER != "cuda", reason="checks CUDA itself")

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
    cuda = lp.slice(SAMPLES / "mlp16_digits.pt", device=OTHER, **kwargs)
    _same_slice(cpu, cuda)


def test_per_layer_slice_on_cuda_matches_cpu() -> None:
    kwargs = dict(probe_size=256, points=5, max_scale=0.5, layers=True)
    cpu = lp.slice(SAMPLES / "mlp2_digits.pt", device="cpu", **kwargs)
    cuda = lp.slice(SAMPLES / "mlp2_digits.pt", device=OTHER, **kwargs)
    assert sorted(cuda.layers) == sorted(cpu.layers) and cuda.layers
    _same_slice(cpu, cuda)


def test_training_on_cuda_matches_cpu_and_its_checkpoint_slices_on_either(tmp_path: Path) -> None:
    kwargs = dict(optimizers=("sgd", "fromage"), epochs=1, depth=2, width=16, diagnostics_every=5)
    cpu = lp.train("mlp", "digits", device="cpu", **kwargs)
    cuda = lp.train("mlp", "digits", device=OTHER, output=tmp_path / "runs", **kwargs)
    for run_cpu, run_cuda in zip(cpu.runs, cuda.runs, strict=True):
        assert run_cpu.name == run_cuda.name
        _close(run_cpu.loss, run_cuda.loss, rtol=1e-3)
        _close(run_cpu.weight_norm, run_cuda.weight_norm, rtol=1e-4)
        _close(run_cpu.epoch_test_accuracy, run_cuda.epoch_test_accuracy, atol=1e-2)
    checkpoint = next((tmp_path / "runs").glob("fromage*/checkpoint.pt"))
    on_cpu = lp.slice(checkpoint, device="cpu", probe_size=128, points=4)
    on_cuda = lp.slice(checkpoint, device=OTHER, probe_size=128, points=4)
    _same_slice(on_cpu, on_cuda)


def test_cnn_slice_on_cuda_matches_cpu(tmp_path: Path) -> None:
    lp.train("cnn:depth=2,channels=4", "digits", optimizers="adam", epochs=1, device="cpu", output=tmp_path / "cnn")
    checkpoint = next((tmp_path / "cnn").glob("*/checkpoint.pt"))
    kwargs = dict(probe_size=128, points=5, max_scale=0.3, layers=True)
    _same_slice(lp.slice(checkpoint, device="cpu", **kwargs), lp.slice(checkpoint, device=OTHER, **kwargs))


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

    cpu, cuda = run("cpu"), run(OTHER)
    for name in ("loss", "weight_norm", "gradient_norm"):
        _close(getattr(cpu.runs[0], name), getattr(cuda.runs[0], name), rtol=1e-4)


def test_cli_slice_and_train_with_device_cuda(tmp_path: Path) -> None:
    runner = CliRunner()
    sliced = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--device", OTHER, "--points", "3",
                                 "--probe-size", "64", "--output", str(tmp_path / "s.h5"), "--no-plots"])
    assert sliced.exit_code == 0, sliced.output
    assert lp.load(tmp_path / "s.h5").config.device.startswith(OTHER)
    trained = runner.invoke(app, ["train", "--device", OTHER, "--optimizer", "adam", "--depth", "2", "--epochs", "1",
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
                     diagnostics_every=0, device=OTHER)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@only_on_cuda
def test_a_training_step_does_not_wait_for_the_gpu() -> None:
    """No synchronisation per step: the batch order is moved once an epoch, and the losses (divergence
    included) and records are read in blocks of 64 steps, so 60 more steps add a block or two."""
    few, many = _synchronisations_of_training(20), _synchronisations_of_training(80)
    assert few > 0, "no synchronisation reported: the sync debug mode caught nothing (the records are read back)"
    assert (many - few) / 60 <= 0.1, f"{few} synchronisations in 20 steps, {many} in 80"


@only_on_cuda
def test_auto_batches_points_on_cuda_and_gives_the_one_at_a_time_numbers() -> None:
    kwargs = dict(probe_size=256, points=7, max_scale=0.5, device=OTHER)
    batched = lp.slice(SAMPLES / "mlp16_digits.pt", **kwargs)  # points_per_pass="auto"
    alone = lp.slice(SAMPLES / "mlp16_digits.pt", points_per_pass=1, **kwargs)
    assert batched.config.points_per_pass > 1, "auto did not batch on CUDA"
    _same_slice(alone, batched)


def test_hessian_plane_and_interpolate_on_cuda_match_cpu() -> None:
    sample, other = SAMPLES / "mlp16_digits.pt", SAMPLES / "mlp2_digits.pt"
    spectra = [lp.hessian(sample, top_k=2, iterations=60, trace_samples=20, density_runs=2, density_steps=20,
                          probe_size=256, device=device) for device in ("cpu", OTHER)]
    _close(spectra[0].eigenvalues, spectra[1].eigenvalues, rtol=1e-2)
    _close(spectra[0].trace_samples, spectra[1].trace_samples, rtol=1e-2, atol=1e-4)  # the same Rademacher z
    _close(spectra[0].loss_at_point, spectra[1].loss_at_point)
    planes = [lp.plane(sample, x="-1:1:5", y="-1:1:5", measure="gradient", probe_size=128, device=device)
              for device in ("cpu", OTHER)]
    for name in ("loss", "relative_function_change", "relative_gradient_change"):
        _close(getattr(planes[0], name), getattr(planes[1], name))
    _close(planes[0].lambda_max, planes[1].lambda_max, rtol=1e-2)
    from landscape_probe.checkpoints.load import load_checkpoint

    start = load_checkpoint(other).model
    end = copy.deepcopy(start)
    with torch.no_grad():  # another end, every weight moved, so that the line's sums are tried on the device
        for parameter in end.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(5)))
    lines = [lp.interpolate(start, end, "digits", range="0:1:3", probe_size=128, device=device)
             for device in ("cpu", OTHER)]
    _close(lines[0].loss, lines[1].loss)


def test_loss_line_float64_and_eigenvector_slices_on_cuda_match_cpu() -> None:
    sample = SAMPLES / "mlp2_digits.pt"
    for kwargs, rtol in ((dict(measure="loss", direction="random"), 2e-3), (dict(dtype="float64"), 1e-9),
                         (dict(direction="eigenvector"), 2e-2)):
        cpu, cuda = (lp.slice(sample, device=device, probe_size=128, points=5, max_scale=0.3, **kwargs)
                     for device in ("cpu", OTHER))
        _close(cpu.loss, cuda.loss, rtol=rtol)
        _close(cpu.relative_function_change, cuda.relative_function_change, rtol=rtol)


def test_an_exported_program_with_tensors_of_its_own_slices_on_cuda(tmp_path: Path) -> None:
    """torch.export writes the export device into the tensors the graph makes (here positions, with arange)."""

    class WithPositions(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = torch.nn.Linear(64, 32), torch.nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = torch.tanh(self.first(x)) + torch.arange(32, device=x.device, dtype=x.dtype) / 32
            return self.second(hidden)

    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(WithPositions(), (torch.randn(4, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "positions.pt2"))
    cpu, cuda = (lp.slice(tmp_path / "positions.pt2", "digits", device=device, probe_size=128, points=4)
                 for device in ("cpu", OTHER))
    _same_slice(cpu, cuda)
