"""Moving a loaded model to the device it is probed on, graph modules (``torch.export``) included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.models.modes import placed


class WithPositions(nn.Module):
    """Makes a tensor of its own in the forward pass, as a transformer's position ids do."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + torch.arange(x.shape[1], device=x.device, dtype=x.dtype)


def test_an_exported_programs_own_tensors_follow_the_weights_to_another_device(tmp_path) -> None:
    """The export writes device=cpu into the graph's ``arange``; ``.to`` alone leaves it there, so on another
    device (here ``meta``, which needs no GPU) the module mixes devices and is refused."""
    torch.manual_seed(0)
    path = tmp_path / "positions.pt2"
    torch.export.save(torch.export.export(WithPositions(), (torch.randn(3, 4),)), str(path))
    module = load_checkpoint(path).model
    x = torch.randn(3, 4)
    expected = module(x)
    moved_alone = load_checkpoint(path).model.to("meta")
    with pytest.raises(RuntimeError, match="device"):  # .to() alone leaves the graph's arange on the CPU
        moved_alone(x.to("meta"))
    on_meta = placed(module, "meta", torch.float32)
    assert on_meta(x.to("meta")).device.type == "meta"
    back = placed(on_meta.to_empty(device="cpu"), "cpu", torch.float32)  # and back, with the weights reloaded
    back.load_state_dict(load_checkpoint(path).model.state_dict())
    torch.testing.assert_close(back(x), expected, rtol=0, atol=0)


def test_an_ordinary_module_is_only_moved() -> None:
    model = nn.Linear(3, 2)
    assert placed(model, "cpu", torch.float64) is model and model.weight.dtype == torch.float64
