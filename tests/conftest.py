"""Shared fixtures: a tiny zoo MLP and a self-describing checkpoint of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.models.zoo import build_model

TINY_ARGS: dict[str, Any] = {"name": "mlp", "in_features": 5, "num_outputs": 3, "depth": 3, "width": 7}


@pytest.fixture
def tiny_args() -> dict[str, Any]:
    """Zoo arguments of a 3-layer MLP on 5 inputs with 3 outputs."""
    return dict(TINY_ARGS)


@pytest.fixture
def tiny_model(tiny_args: dict[str, Any]) -> nn.Module:
    """The tiny MLP, seeded, with non-zero biases so that they matter, in eval mode."""
    torch.manual_seed(0)
    model = build_model(tiny_args)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_()
    return model.eval()


@pytest.fixture
def probe_input() -> torch.Tensor:
    """A fixed batch of inputs for the tiny MLP."""
    return torch.randn(11, TINY_ARGS["in_features"], generator=torch.Generator().manual_seed(1))


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict[str, Any]) -> Path:
    """A self-describing checkpoint of the tiny MLP, with step, data and config recorded."""
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path, tiny_model, tiny_args, step=12, data={"name": "digits", "seed": 0}, config={"optimizer": "sgd"}
    )
    return path


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One CUDA device, without a GPU: its generator's state is a byte in ``["state"]`` (7 to start with).

    ``torch.cuda.manual_seed_all`` (which ``torch.manual_seed`` calls) sets it to the seed and counts in
    ``["seedings"]``; ``get_rng_state_all`` / ``set_rng_state_all`` read and write it.
    """
    box: dict[str, Any] = {"state": torch.tensor([7], dtype=torch.uint8), "seedings": 0}

    def manual_seed_all(seed: int) -> None:
        box.update(state=torch.tensor([seed % 256], dtype=torch.uint8), seedings=box["seedings"] + 1)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", manual_seed_all)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [box["state"].clone()])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: box.update(state=states[0].clone()))
    return box
