"""A zoo checkpoint is loaded into a model built on the meta device: the file's tensors become its parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from landscape_probe.checkpoints import load as load_module
from landscape_probe.checkpoints.load import load_checkpoint, save_checkpoint


def loaded_with_payload(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The loaded model, and the state_dict as ``torch.load`` gave it (kept to compare storage)."""
    payloads = []
    reader = load_module.read_torch_file

    def reading(*args, **kwargs):
        payloads.append(reader(*args, **kwargs))
        return payloads[-1]

    monkeypatch.setattr(load_module, "read_torch_file", reading)
    return load_checkpoint(path).model, payloads[0]["state_dict"]


def test_the_files_tensors_become_the_parameters_with_no_copy(tiny_checkpoint: Path, tiny_model: nn.Module,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model, stored = loaded_with_payload(tiny_checkpoint, monkeypatch)
    for name, parameter in model.named_parameters():
        assert isinstance(parameter, nn.Parameter) and parameter.requires_grad and parameter.device.type == "cpu"
        assert parameter.data_ptr() == stored[name].data_ptr(), f"{name} was copied"
        assert torch.equal(parameter, dict(tiny_model.named_parameters())[name])


def test_weights_of_another_dtype_are_copied_in_and_cast(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path / "f64.pt", tiny_model.double(), tiny_args)
    model, stored = loaded_with_payload(tmp_path / "f64.pt", monkeypatch)
    for name, parameter in model.named_parameters():
        assert parameter.dtype == torch.float32 and not parameter.is_meta
        assert torch.equal(parameter, stored[name].float())


def test_a_batch_norm_models_buffers_are_loaded(tmp_path: Path) -> None:
    from landscape_probe.models.zoo import build_model

    args = {"name": "mlp", "in_features": 5, "num_outputs": 3, "depth": 3, "width": 7, "norm": "batch"}
    torch.manual_seed(1)
    model = build_model(args)
    model.train()(torch.randn(16, 5))  # running statistics away from their initial values
    save_checkpoint(tmp_path / "bn.pt", model, args)
    loaded = load_checkpoint(tmp_path / "bn.pt").model
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert not any(t.is_meta for t in loaded.state_dict().values())
