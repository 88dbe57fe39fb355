"""No TF32 while measuring: every measuring entry point runs its model with TF32 off, and puts the flags back.

TF32 only exists on CUDA, but its flags are global and readable on any build, so what each entry point
sets while the model runs is checked here, on the CPU, with a forward hook that reads them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import landscape_probe as lp
from landscape_probe.devices import exact_float32
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.engine import run_slice


def watched_model(seen: list[tuple[bool, bool]]) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    model.register_forward_pre_hook(
        lambda *_: seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)))
    return model


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(16, 4, generator=generator), torch.randint(0, 3, (16,), generator=generator)


ENTRY_POINTS = {
    "run_slice": lambda model, xy: run_slice(model, *xy, "cross_entropy",
                                             SliceConfig(scales=(0.01, 0.1), device="cpu", power_iterations=5)),
    "lp.slice": lambda model, xy: lp.slice(model, xy, points=3, power_iterations=5, device="cpu"),
    "lp.plane": lambda model, xy: lp.plane(model, xy, x="-1:1:2", y="-1:1:2", device="cpu"),
    "lp.hessian": lambda model, xy: lp.hessian(model, xy, top_k=1, iterations=5, trace_samples=2, density_runs=1,
                                               density_steps=5, device="cpu"),
    "lp.interpolate": lambda model, xy: lp.interpolate(model, watched_model([]), xy, range="0:1:3", device="cpu"),
}


@pytest.mark.parametrize("user_matmul_tf32", [False, True])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_measuring_entry_point_runs_without_tf32_and_puts_the_flags_back(entry: str,
                                                                               user_matmul_tf32: bool) -> None:
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = True  # torch's default
        torch.backends.cuda.matmul.allow_tf32 = user_matmul_tf32  # a user who asked for TF32 products
        seen: list[tuple[bool, bool]] = []
        ENTRY_POINTS[entry](watched_model(seen), data())
        assert seen and set(seen) == {(False, False)}
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, user_matmul_tf32)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_flags_come_back_after_an_error_and_nested_blocks_keep_them_off() -> None:
    before = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        with pytest.raises(ValueError), exact_float32():
            with exact_float32():
                assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cudnn.allow_tf32  # the inner block found it off and left it off
            raise ValueError
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32 = before
