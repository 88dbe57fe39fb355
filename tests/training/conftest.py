"""Shared by the training tests: a tiny classification set and a stop request that comes after a few polls."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from landscape_probe.data.datasets import Dataset


@pytest.fixture(scope="module")
def tiny_data() -> Dataset:
    """40 training and 12 test examples of 6 features in 3 classes (40 in batches of 16: 3 steps an epoch)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(52, 6, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return Dataset("tiny", x[:40], y[:40], x[40:], y[40:], "classification", 3, {"name": "tiny"})


def stop_after(calls: int) -> Callable[[], bool]:
    """A ``should_stop`` that asks to stop from its ``calls + 1``-th poll on (a Ctrl-C between two steps)."""
    count = {"n": 0}

    def should_stop() -> bool:
        count["n"] += 1
        return count["n"] > calls

    return should_stop


@pytest.fixture
def stop_request() -> Callable[[int], Callable[[], bool]]:
    """:func:`stop_after`, for tests to call."""
    return stop_after
