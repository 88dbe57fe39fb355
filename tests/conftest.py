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
