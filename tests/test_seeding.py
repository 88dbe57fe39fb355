"""Seeding leaves torch's global generators, the CUDA ones included, as they were (CUDA faked: no GPU here)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from landscape_probe.data.synthetic import teacher
from landscape_probe.seeding import seeded
from landscape_probe.training.loop import init_model

ZOO = {"name": "mlp", "in_features": 4, "num_outputs": 2, "depth": 2, "width": 5}


def test_the_teacher_and_a_zoo_model_leave_the_cuda_generators_alone(fake_cuda: dict[str, Any]) -> None:
    cpu = torch.get_rng_state()
    first, again = teacher(3, 4, 2), teacher(3, 4, 2)
    zoo = init_model(ZOO, seed=3)
    assert fake_cuda["seedings"] == 0 and fake_cuda["state"].item() == 7 and torch.equal(torch.get_rng_state(), cpu)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert torch.equal(zoo.hidden[0].weight, init_model(ZOO, seed=3).hidden[0].weight)


def test_a_factory_draws_from_seeded_cuda_generators_which_are_put_back(fake_cuda: dict[str, Any]) -> None:
    seen = []

    def factory() -> nn.Module:  # a user's model built on a GPU draws from the CUDA generator
        seen.append(fake_cuda["state"].item())
        return nn.Linear(2, 2)

    init_model({}, seed=5, factory=factory)
    init_model({}, seed=6, factory=factory)
    assert seen == [5, 6] and fake_cuda["state"].item() == 7


def test_seeded_draws_on_the_cpu_what_manual_seed_draws() -> None:
    with seeded(11):
        drawn = torch.randn(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        assert torch.equal(drawn, torch.randn(3))
