"""How often K-FAC and AGD read a number back from the parameters' device in a step (each read waits for a GPU).

Counted on the CPU through ``__torch_function__``: every ``float``, ``bool``, ``int``, ``.item()`` and
``.tolist()`` of a tensor is a read. The numbers themselves are checked elsewhere against the authors' rules.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from landscape_probe.optim import AGD, KFAC

READS = {torch.Tensor.__float__, torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.item, torch.Tensor.tolist}


class CountReads(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.reads += func in READS
        return func(*args, **(kwargs or {}))


def _three_layers() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def _reads_per_step(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> list[int]:
    counts = []
    for step in range(steps):
        optimizer.zero_grad()
        x = torch.randn(6, 5, generator=torch.Generator().manual_seed(step))
        nn.functional.cross_entropy(model(x), torch.arange(6) % 3).backward()
        with CountReads() as counter:
            optimizer.step()
        counts.append(counter.reads)
    return counts


@pytest.mark.parametrize(("kl_clip", "reads"), [(None, 0), (1e-3, 1)])
def test_kfac_reads_its_kl_sum_once_a_step_and_nothing_without_a_clip(kl_clip: float | None, reads: int) -> None:
    model = _three_layers()
    counts = _reads_per_step(model, KFAC(model, lr=0.1, inverse_every=3, kl_clip=kl_clip), steps=3)
    assert counts[1:] == [reads, reads]  # the first step computes the inverses, which checks them for NaN


def test_agd_reads_its_gain_once_a_step_not_once_a_layer() -> None:
    model = _three_layers()
    assert _reads_per_step(model, AGD(model.parameters()), steps=2) == [1, 1]
