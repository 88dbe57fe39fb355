"""Every optimiser in the table, on the same two problems, through the training loop's calls.

The loop is forward, ``loss.backward()``, ``optimizer.step()``,
``optimizer.zero_grad()``, exactly as ``probe train`` runs it. Progress is
measured against the starting loss, so a broken update rule (wrong sign, no
movement, divergence) fails.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.optim import OPTIMIZER_NAMES, OPTIMIZERS, build_optimizer

# name -> (lr on the quadratic, lr on Rosenbrock); momentum 0.9 where used.
LEARNING_RATES: dict[str, tuple[float, float]] = {
    "sgd": (0.1, 1e-3),
    "momentum": (0.01, 1e-4),
    "nesterov": (0.01, 1e-4),
    "adagrad": (0.1, 0.1),
    "rmsprop": (3e-3, 0.01),
    "adam": (0.01, 0.01),
    "adamw": (0.01, 0.01),
    "fromage": (0.01, 0.1),
    "lars": (0.01, 1e-3),
    "nero": (0.03, 0.01),
    "madam": (0.03, 0.1),
    "agd": (1.0, 0.01),
    "kfac": (0.01, 1e-4),
    "noise_adaptive": (1.0, 1e-3),
    "lion": (0.01, 0.01),
    "lamb": (0.01, 0.01),
    "adafactor": (0.01, 0.01),
    "muon": (0.01, 0.03),
    "soap": (0.01, 0.03),
    "schedulefree_adamw": (0.03, 0.03),
}
STEPS = 300


def balanced_least_squares() -> tuple[nn.Module, Callable[[], Tensor]]:
    """A Linear least-squares problem whose minimum every optimiser can reach.

    Weight rows start as (u, −u) and the target rows are (v, −v), with v a
    permutation of the positive vector u: zero mean and the same norm (Nero's
    constraint set) and the same signs (Madam never flips a sign). Biases start
    at 0.5 and target positive values. The minimum loss is zero.
    """
    generator = torch.Generator().manual_seed(0)
    entries = torch.tensor([0.1, 0.2, 0.3, 0.4])
    u = torch.stack([entries[torch.randperm(4, generator=generator)] for _ in range(3)])
    v = torch.stack([entries[torch.randperm(4, generator=generator)] for _ in range(3)])
    model = nn.Linear(8, 3)
    with torch.no_grad():
        model.weight.copy_(torch.cat([u, -u], dim=1))
        model.bias.fill_(0.5)
    x = torch.randn(64, 8, generator=generator)
    y = x @ torch.cat([v, -v], dim=1).T + torch.tensor([1.0, 0.3, 0.7])
    return model, lambda: (model(x) - y).pow(2).mean()


class Rosenbrock(nn.Module):
    """f(x, y) = (1 − x)² + 100·(y − x²)², minimum 0 at (1, 1), from (2, 2) where f = 401.

    x and y are 1 × 1 matrices, so optimisers that act on weight matrices (AGD)
    see two layers, and Nero treats them as fan-in-1 tensors.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.full((1, 1), 2.0))
        self.y = nn.Parameter(torch.full((1, 1), 2.0))

    def forward(self) -> Tensor:
        return ((1 - self.x).pow(2) + 100 * (self.y - self.x.pow(2)).pow(2)).sum()


def rosenbrock() -> tuple[nn.Module, Callable[[], Tensor]]:
    model = Rosenbrock()
    return model, model


Problem = Callable[[], tuple[nn.Module, Callable[[], Tensor]]]


def final_over_initial_loss(problem: Problem, name: str, lr: float) -> float:
    model, loss_fn = problem()
    optimizer = build_optimizer(name, model, lr, momentum=0.9)
    initial = loss_fn().item()
    for _ in range(STEPS):
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss_fn().item() / initial


def test_every_optimizer_has_test_learning_rates() -> None:
    assert set(LEARNING_RATES) == set(OPTIMIZER_NAMES)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_quadratic_loss_falls_a_thousandfold(name: str) -> None:
    assert final_over_initial_loss(balanced_least_squares, name, LEARNING_RATES[name][0]) < 1e-3


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_rosenbrock_reaches_the_valley_and_moves_along_it(name: str) -> None:
    # On the valley floor y = x² the loss is (1 − x)², 1/401 of the start at x = 2.
    assert final_over_initial_loss(rosenbrock, name, LEARNING_RATES[name][1]) < 2e-3


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_default_learning_rate_is_in_the_first_param_group(name: str) -> None:
    optimizer = build_optimizer(name, nn.Linear(3, 2))
    assert optimizer.param_groups[0]["lr"] == OPTIMIZERS[name].default_lr


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ProbeError, match="fromage"):
        build_optimizer("frommage", nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("lr", "momentum", "weight_decay"), [(0.0, 0.9, 0.0), (float("nan"), 0.9, 0.0), (0.1, 1.0, 0.0), (0.1, 0.9, -1.0)]
)
def test_out_of_range_settings_are_user_errors(lr: float, momentum: float, weight_decay: float) -> None:
    with pytest.raises(ProbeError):
        build_optimizer("sgd", nn.Linear(2, 2), lr, momentum=momentum, weight_decay=weight_decay)


def test_names_are_case_and_dash_insensitive() -> None:
    assert type(build_optimizer("Noise-Adaptive", nn.Linear(2, 2))).__name__ == "NoiseAdaptiveSGD"


def tiny_regression() -> tuple[nn.Module, list[tuple[Tensor, Tensor]]]:
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
    batches = [(torch.randn(6, 4, generator=generator), torch.randn(6, 2, generator=generator)) for _ in range(5)]
    return model, batches


def train_on(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[tuple[Tensor, Tensor]]) -> None:
    for x, y in batches:
        (model(x) - y).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    model, batches = tiny_regression()
    optimizer = build_optimizer(name, model, momentum=0.9, weight_decay=1e-3)
    train_on(model, optimizer, batches[:3])
    twin, _ = tiny_regression()
    twin.load_state_dict(model.state_dict())
    twin_optimizer = build_optimizer(name, twin, momentum=0.9, weight_decay=1e-3)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    twin_optimizer.load_state_dict(torch.load(buffer))
    train_on(model, optimizer, batches[3:])
    train_on(twin, twin_optimizer, batches[3:])
    for (key, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_scheduler_scales_the_step(name: str) -> None:
    """After one common step, halving the learning rate shrinks the second step."""
    sizes = []
    for factor in (1.0, 0.5):
        model, batches = tiny_regression()
        optimizer = build_optimizer(name, model, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 if epoch == 0 else factor)
        train_on(model, optimizer, batches[:1])
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(factor * OPTIMIZERS[name].default_lr)
        before = [p.detach().clone() for p in model.parameters()]
        train_on(model, optimizer, batches[1:2])
        sizes.append(sum(float((p.detach() - b).norm() ** 2) for p, b in zip(model.parameters(), before)) ** 0.5)
    assert 0.0 < sizes[1] < 0.9 * sizes[0]
