"""Per-example gradient norms from one backward pass, against a plain loop of per-example backward passes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_probe.losses import loss_function
from landscape_probe.models.zoo import build_model
from landscape_probe.training.per_example_norms import squared_norms_and_sum

CROSS_ENTROPY = loss_function("cross_entropy")


class _Tokens(nn.Module):
    """Embedding → Linear → LayerNorm → Linear over positions, mean-pooled: sequences through every supported kind."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, width)
        self.up = nn.Linear(width, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 3, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.norm(self.up(self.embed(tokens))))).mean(1)


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.tanh(self.layer(x)))[:, :3]


def _loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    norms, total = [], None
    for i in range(len(x)):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), list(model.parameters()))
        norms.append(sum(float(g.pow(2).sum()) for g in grads))
        total = list(grads) if total is None else [t + g for t, g in zip(total, grads)]
    return torch.tensor(norms, dtype=torch.float64), total


def _mlp(**args: object) -> nn.Module:
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "in_features": 4, "num_outputs": 3, "depth": 3, "width": 5, **args}).double()
    if args.get("norm") == "batch":
        model(torch.randn(16, 4, dtype=torch.float64))  # running statistics away from 0 and 1
    return model.eval()


def _features(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=generator, dtype=torch.float64), torch.randint(0, 3, (n,), generator=generator)


@pytest.mark.parametrize("args", [{}, {"norm": "layer"}, {"norm": "batch"}, {"residual": True, "bias": False}])
def test_mlp_norms_and_sum_equal_a_per_example_loop(args: dict) -> None:
    model = _mlp(**args)
    x, y = _features()
    norms, total = squared_norms_and_sum(model, CROSS_ENTROPY, x, y)
    expected_norms, expected_total = _loop(model, x, y)
    torch.testing.assert_close(norms, expected_norms, rtol=1e-12, atol=0)
    for got, expected in zip(total.values(), expected_total, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("width, hidden", [(2, 3), (8, 16)])  # T² above, then below in·out: both ways of summing
def test_sequences_through_embedding_linear_and_layer_norm_equal_a_loop(width: int, hidden: int) -> None:
    torch.manual_seed(0)
    model = _Tokens(width, hidden).double().eval()
    tokens = torch.tensor([[0, 1, 1, 4, 0, 1], [2, 2, 2, 2, 2, 2], [3, 0, 4, 1, 2, 0]])
    y = torch.tensor([0, 2, 1])
    norms, _ = squared_norms_and_sum(model, CROSS_ENTROPY, tokens, y)
    torch.testing.assert_close(norms, _loop(model, tokens, y)[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
@pytest.mark.parametrize("shape", [(2, 5, 5), (2, 7)])
def test_zoo_cnns_equal_a_per_example_loop(shape: tuple[int, ...], norm: str) -> None:
    torch.manual_seed(0)
    args = {"name": "cnn", "input_shape": list(shape), "num_outputs": 3, "depth": 2, "channels": 3, "norm": norm}
    model = build_model(args).double()
    x = torch.randn(5, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    if norm == "batch":
        model(x * 2 + 1)  # running statistics away from 0 and 1
    model.eval()
    y = torch.tensor([0, 1, 2, 1, 0])
    norms, total = squared_norms_and_sum(model, CROSS_ENTROPY, x, y)
    expected_norms, expected_total = _loop(model, x, y)
    torch.testing.assert_close(norms, expected_norms, rtol=1e-12, atol=0)
    for got, expected in zip(total.values(), expected_total, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)


def test_strided_dilated_reflect_padded_convolutions_equal_a_loop() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=2, dilation=2, padding_mode="reflect"), nn.Tanh(),
                          nn.Conv2d(3, 4, (2, 3), padding=(1, 0)), nn.Flatten(), nn.LazyLinear(3)).double()
    x = torch.randn(4, 2, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    model(x)  # the lazy layer takes its shape
    model.eval()
    y = torch.tensor([2, 0, 1, 1])
    norms, _ = squared_norms_and_sum(model, CROSS_ENTROPY, x, y)
    torch.testing.assert_close(norms, _loop(model, x, y)[0], rtol=1e-12, atol=0)


def test_models_outside_the_method_are_declined() -> None:
    x, y = _features()
    assert squared_norms_and_sum(_Twice().double().eval(), CROSS_ENTROPY, x, y) is None, "a layer used twice"
    grouped = nn.Sequential(nn.Unflatten(1, (2, 2)), nn.Conv1d(2, 4, 2, groups=2), nn.Flatten(),
                            nn.Linear(4, 3)).double().eval()
    assert squared_norms_and_sum(grouped, CROSS_ENTROPY, x, y) is None, "a grouped convolution"
    batch = _mlp(norm="batch").train()
    assert squared_norms_and_sum(batch, CROSS_ENTROPY, x, y) is None, "batch statistics couple the examples"
    frozen = _mlp()
    frozen.output.bias.requires_grad_(False)
    assert squared_norms_and_sum(frozen, CROSS_ENTROPY, x, y) is None, "a frozen parameter"
