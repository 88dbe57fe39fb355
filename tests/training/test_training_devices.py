"""Training as it runs on a GPU, checked on the CPU: what is saved, where tensors live, what is left untouched.

No GPU is needed: a file claiming CUDA storage stands in for one written on a GPU, a tensor subclass that
a weights-only load refuses stands in for a GPU tensor (its ``.cpu()`` copy is plain, as a GPU tensor's is),
and the ``meta`` device stands in for a device other than the data's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_map_only

from landscape_probe.data.datasets import Dataset
from landscape_probe.devices import portable
from landscape_probe.optim import OPTIMIZERS, build_optimizer
from landscape_probe.training import grid, loop
from landscape_probe.training.loop import TrainConfig, chosen_output, train_run
from landscape_probe.training.records import RECORDED
from landscape_probe.training.result import TrainResult

CONFIG = TrainConfig(optimizers=("adam",), width=8, epochs=2, batch_size=16, diagnostics_every=2,
                     diagnostic_batch_size=8, sharpness_iterations=3, dataset="tiny")


class OnAccelerator(torch.Tensor):
    """A CPU tensor standing in for one on a GPU: ``torch.load(weights_only=True)`` refuses it, its ``.cpu()`` is plain."""

    def cpu(self, *args, **kwargs) -> torch.Tensor:
        return super().cpu(*args, **kwargs).as_subclass(torch.Tensor)


def _same_records(runs: list, reference: list) -> None:
    expected = {run.name: run for run in reference}
    for run in runs:
        for name in RECORDED:
            np.testing.assert_array_equal(run.records[name], expected[run.name].records[name], err_msg=name)
        assert run.completed and run.steps == expected[run.name].steps


def test_a_grid_cut_short_on_a_gpu_resumes_on_a_machine_without_one(
    tiny_data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_request
) -> None:
    whole = grid.train_grid(CONFIG, tiny_data, tmp_path / "whole")
    grid.train_grid(CONFIG, tiny_data, tmp_path / "cut", should_stop=stop_request(4))
    (resume_file,) = (tmp_path / "cut").glob("*/resume.pt")
    saved = torch.load(resume_file, weights_only=True)
    with monkeypatch.context() as patch:  # every storage recorded as on cuda:0, as torch.save writes a GPU's
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(saved, resume_file)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(resume_file, weights_only=True)  # what a machine without a GPU says to a plain load
    resumed = grid.train_grid(CONFIG, tiny_data, tmp_path / "cut", resume=True)
    _same_records(TrainResult.load(resumed.path).runs, TrainResult.load(whole.path).runs)


def test_the_resume_file_and_the_checkpoints_optimizer_state_are_saved_from_the_cpu(
    tiny_data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_request
) -> None:
    trained_on_the_cpu = grid.train_run

    def trained_on_a_gpu(*args, **kwargs):
        run = trained_on_the_cpu(*args, **kwargs)
        run.state = tree_map_only(torch.Tensor, lambda t: t.as_subclass(OnAccelerator), run.state)
        return run

    monkeypatch.setattr(grid, "train_run", trained_on_a_gpu)
    grid.train_grid(CONFIG, tiny_data, tmp_path, should_stop=stop_request(4))
    (folder,) = (path.parent for path in tmp_path.glob("*/resume.pt"))
    resume = torch.load(folder / "resume.pt", weights_only=True)  # refused if a GPU tensor was saved as is
    optimizer = torch.load(folder / "checkpoint.pt", weights_only=True)["optimizer"]
    tensors = [t for t in tree_flatten([resume, optimizer])[0] if isinstance(t, torch.Tensor)]
    assert tensors and all(type(t) is torch.Tensor and t.device.type == "cpu" for t in tensors)
    assert torch.equal(resume["state"]["optimizer"]["state"][0]["exp_avg"], optimizer["state"][0]["exp_avg"])


@pytest.mark.parametrize("name", ["adam", "kfac", "soap", "muon", "nero", "schedulefree_adamw"])
def test_an_optimizer_state_saved_on_the_cpu_loads_onto_the_devices_of_its_parameters(name: str) -> None:
    """What resuming does with the CPU copy: ``load_state_dict`` puts every floating tensor beside its parameter."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    optimizer = build_optimizer(name, model, OPTIMIZERS[name].default_lr)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(8, 6)), torch.arange(8) % 3).backward()
        optimizer.step()
    saved = portable(optimizer.state_dict())
    elsewhere = model.to("meta")  # the run's device, other than the file's
    moved = build_optimizer(name, elsewhere, OPTIMIZERS[name].default_lr)
    moved.load_state_dict(saved)
    # torch keeps Adam's step count on the CPU on purpose (no kernel launch to increment it)
    floating = [t for key, t in _leaves(moved.state_dict()) if key != "step" and t.is_floating_point()]
    assert floating and all(t.device.type == "meta" for t in floating)


def _leaves(value, key=None):
    """(key, tensor) for every tensor in nested dicts and lists, with the key of the dict that holds it."""
    if isinstance(value, torch.Tensor):
        yield key, value
    elif isinstance(value, dict):
        for inner, item in value.items():
            yield from _leaves(item, inner)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item, key)


class LogitsOnMeta(torch.nn.Module):
    """A user's model that its factory builds on another device (a GPU in use), returning a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 3, device="meta")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden": x, "logits": self.linear(x)}


def test_the_trained_output_is_found_on_the_device_the_factory_built_the_model_on(tiny_data: Dataset) -> None:
    assert chosen_output(CONFIG, tiny_data, LogitsOnMeta, None) == "logits"
    assert chosen_output(CONFIG, tiny_data, torch.nn.Flatten, None) == ""  # no parameters: the data's device


def test_an_interrupted_run_keeps_the_cuda_generators_and_resuming_puts_them_back(
    fake_cuda: dict, tiny_data: Dataset, stop_request
) -> None:
    config = replace(CONFIG, epochs=1, diagnostics_every=0)
    cut = train_run(config, tiny_data, "sgd", 0.1, 2, 0, should_stop=stop_request(1))
    assert not cut.completed and cut.state["cuda_rng"][0].item() == 7
    fake_cuda["state"] = torch.tensor([99], dtype=torch.uint8)
    train_run(config, tiny_data, "sgd", 0.1, 2, 0, resume=cut)
    assert fake_cuda["state"].item() == 7
    del cut.state["cuda_rng"]  # a resume file from before, or from a machine without CUDA: CUDA's left alone
    fake_cuda["state"] = torch.tensor([99], dtype=torch.uint8)
    train_run(config, tiny_data, "sgd", 0.1, 2, 0, resume=cut)
    assert fake_cuda["state"].item() == 99


def test_each_epochs_order_is_made_once_and_moved_to_the_datas_device_once(
    tiny_data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step indexes the data with a slice of an order already on the data's device: no copy, no wait, per step."""
    from torch.overrides import TorchFunctionMode

    orders, moved, indices = [], [], []
    made = loop.batch_order

    def watched_order(*args: int) -> torch.Tensor:
        orders.append(made(*args))
        return orders[-1]

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            if func is torch.Tensor.to and any(args[0] is order for order in orders):
                moved.append(result)
            if func is torch.Tensor.__getitem__ and args[0] is tiny_data.x_train and torch.is_tensor(args[1]):
                indices.append(args[1])
            return result

    monkeypatch.setattr(loop, "batch_order", watched_order)
    with Watch():
        run = train_run(replace(CONFIG, diagnostics_every=0), tiny_data, "sgd", 0.1, 2, 0)
    assert len(orders) == len(moved) == CONFIG.epochs and len(indices) == run.steps == 6
    assert all(order.device == tiny_data.x_train.device for order in moved)
    assert all(any(index._base is order for order in moved) for index in indices)


@pytest.mark.parametrize(("diverges_at", "diagnostics_every", "flush_every"),
                         [(0, 2, 64), (1, 2, 64), (2, 2, 64), (1, 0, 64), (0, 0, 2), (1, 2, 1)])
def test_a_run_whose_losses_are_read_in_blocks_diverges_with_the_records_of_one_read_at_once(
    tiny_data: Dataset, monkeypatch: pytest.MonkeyPatch, diverges_at: int, diagnostics_every: int, flush_every: int
) -> None:
    """As on a GPU: the loss not finite is found in a copied block (at a diagnostic step, an epoch's end, a block)."""
    from landscape_probe.training import recorder

    x = tiny_data.x_train.clone()
    x[loop.batch_order(40, 0, 0)[16 * diverges_at], 0] = math.inf  # one example of that first-epoch step's batch
    data = replace(tiny_data, x_train=x)
    config = replace(CONFIG, diagnostics_every=diagnostics_every, epochs=3)
    monkeypatch.setattr(recorder, "FLUSH_EVERY", flush_every)
    at_once = train_run(config, data, "sgd", 0.1, 2, 0)
    monkeypatch.setattr(loop, "loss_read_at_once", lambda device: False)
    in_blocks = train_run(config, data, "sgd", 0.1, 2, 0)
    assert at_once.diverged and in_blocks.diverged and at_once.completed and in_blocks.completed
    assert at_once.steps == in_blocks.steps == diverges_at
    for name in RECORDED:
        np.testing.assert_array_equal(np.asarray(in_blocks.records[name], dtype=float),
                                      np.asarray(at_once.records[name], dtype=float), err_msg=name)
    assert len(at_once.records["loss"]) == diverges_at and all(map(math.isfinite, at_once.records["loss"]))
