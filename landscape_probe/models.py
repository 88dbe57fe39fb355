"""The model zoo: models rebuilt from a plain ``model_args`` dict.

A self-describing checkpoint stores ``model_args`` (JSON-able: strings, numbers,
booleans) and ``build_model(model_args)`` rebuilds the network with no other
input. ``model_args["name"]`` picks the family; the rest are its keyword
arguments.

Example:
    >>> model = build_model({"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 3, "width": 32})
    >>> [name for name, _ in model.named_parameters()][:2]
    ['hidden.0.weight', 'hidden.0.bias']
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
INITS = ("lecun", "xavier", "kaiming", "orthogonal")
NORMS = ("none", "batch", "layer")


def init_linear_weight(weight: Tensor, init: str, activation: str = "relu") -> None:
    """Initialise a weight matrix (or conv kernel) in place.

    ``lecun``: N(0, 1/fan_in); ``xavier``: N(0, 2/(fan_in+fan_out));
    ``kaiming``: N(0, gain²/fan_in) with the activation's gain;
    ``orthogonal``: a (semi-)orthogonal matrix scaled by the activation's gain.
    """
    fan_in = weight[0].numel()
    if init == "lecun":
        nn.init.normal_(weight, std=1.0 / math.sqrt(fan_in))
    elif init == "xavier":
        nn.init.xavier_normal_(weight)
    elif init == "kaiming":
        nonlinearity = activation if activation in ("relu", "leaky_relu", "tanh") else "relu"
        nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity)
    elif init == "orthogonal":
        gain = nn.init.calculate_gain(activation) if activation in ("relu", "leaky_relu", "tanh") else 1.0
        nn.init.orthogonal_(weight, gain=gain)
    else:
        raise ProbeError(f"Unknown init '{init}'; use one of {', '.join(INITS)}.")


class MLP(nn.Module):
    """A multilayer perceptron of any depth: ``depth`` Linear layers in all.

    Inputs are flattened. Hidden blocks are Linear → (norm) → activation, with
    an optional residual connection around each block whose input and output
    widths match. ``depth=1`` is a linear model.

    Args:
        in_features: input size after flattening.
        num_outputs: output size (classes, or regression targets).
        depth: number of Linear layers (the paper's L).
        width: hidden width.
        activation: relu, leaky_relu, tanh or gelu.
        init: lecun, xavier, kaiming or orthogonal (biases start at zero).
        norm: none, batch or layer normalisation after each hidden Linear.
        residual: add the block input to its output where shapes allow.
        bias: whether Linear layers have biases.
    """

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        depth: int = 2,
        width: int = 256,
        activation: str = "relu",
        init: str = "lecun",
        norm: str = "none",
        residual: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ProbeError(f"An MLP needs depth >= 1, got {depth}.")
        if activation not in ACTIVATIONS:
            raise ProbeError(f"Unknown activation '{activation}'; use one of {', '.join(ACTIVATIONS)}.")
        if norm not in NORMS:
            raise ProbeError(f"Unknown norm '{norm}'; use one of {', '.join(NORMS)}.")
        self.residual = residual
        sizes = [in_features] + [width] * (depth - 1)
        self.hidden = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1], bias=bias) for i in range(depth - 1))
        if norm == "batch":
            self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(depth - 1))
        elif norm == "layer":
            self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth - 1))
        else:
            self.norms = nn.ModuleList(nn.Identity() for _ in range(depth - 1))
        self.activation = ACTIVATIONS[activation]()
        self.output = nn.Linear(sizes[-1], num_outputs, bias=bias)
        for linear in [*self.hidden, self.output]:
            init_linear_weight(linear.weight, init, activation)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for linear, norm in zip(self.hidden, self.norms):
            out = self.activation(norm(linear(h)))
            h = h + out if self.residual and out.shape == h.shape else out
        return self.output(h)


ZOO: dict[str, type[nn.Module]] = {"mlp": MLP}


def build_model(model_args: dict[str, Any]) -> nn.Module:
    """Build a zoo model from its ``model_args`` (``name`` plus keyword arguments).

    Raises:
        ProbeError: for an unknown family or arguments it does not take.
    """
    args = dict(model_args)
    name = args.pop("name", None)
    if name not in ZOO:
        raise ProbeError(f"Unknown model '{name}'; the zoo has {', '.join(sorted(ZOO))}.")
    try:
        return ZOO[name](**args)
    except TypeError as err:
        raise ProbeError(f"Model '{name}' cannot be built from {args}: {err}.") from None


def parse_zoo_spec(spec: str) -> dict[str, Any]:
    """Parse ``mlp:depth=16,width=256`` into ``{"name": "mlp", "depth": 16, "width": 256}``.

    Values become int, float or bool where they read as one, else stay strings.
    """
    name, _, rest = spec.partition(":")
    args: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ProbeError(f"Cannot read '{item}' in the model spec '{spec}'; write key=value.")
        args[key.strip()] = _parse_value(value.strip())
    return args


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters())

