"""The model zoo: models rebuilt from a plain ``model_args`` dict.

A self-describing checkpoint stores ``model_args`` (JSON-able: strings, numbers,
booleans, lists of ints) and ``build_model(model_args)`` rebuilds the network
with no other input. ``model_args["name"]`` picks the family (``mlp``, ``cnn``,
``transformer``); the rest are its keyword arguments. ``complete_model_args``
fills in the sizes a data set determines.

Example:
    >>> model = build_model({"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 3, "width": 32})
    >>> [name for name, _ in model.named_parameters()][:2]
    ['hidden.0.weight', 'hidden.0.bias']
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from landscape_probe.models.cnn import CNN
from landscape_probe.errors import ProbeError
from landscape_probe.models.blocks import NORMALISATIONS, check_choice, init_affine, make_activation, make_normalisation
from landscape_probe.specs import parse_spec
from landscape_probe.models.transformer import Transformer



class DataShape(Protocol):
    """What the zoo needs to know of a data set: the shape of one example and the outputs it needs."""

    input_shape: tuple[int, ...]
    num_outputs: int

__all__ = [
    "CNN",
    "MLP",
    "ZOO",
    "Transformer",
    "build_model",
    "build_on_meta",
    "complete_model_args",
    "parse_zoo_spec",
]


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
        check_choice(norm, NORMALISATIONS, "norm")
        self.residual = residual
        sizes = [in_features] + [width] * (depth - 1)
        self.hidden = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1], bias=bias) for i in range(depth - 1))
        self.norms = nn.ModuleList(make_normalisation(norm, width) for _ in range(depth - 1))
        self.activation = make_activation(activation)
        self.output = nn.Linear(sizes[-1], num_outputs, bias=bias)
        for linear in [*self.hidden, self.output]:
            init_affine(linear, init, activation)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for linear, norm in zip(self.hidden, self.norms):
            out = self.activation(norm(linear(h)))
            h = h + out if self.residual and out.shape == h.shape else out
        return self.output(h)


ZOO: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "transformer": Transformer}


def build_model(model_args: dict[str, Any]) -> nn.Module:
    """Build a zoo model from its ``model_args`` (``name`` plus keyword arguments).

    Raises:
        ProbeError: for an unknown family, arguments it does not take or lacks, or
            a size (an argument declared ``int``) that is not a whole number, or is
            below 1 (below 0 for ``depth``, which each family bounds further).
    """
    args = dict(model_args)
    name = args.pop("name", None)
    if name not in ZOO:
        raise ProbeError(f"Unknown model '{name}'; the zoo has {', '.join(sorted(ZOO))}.")
    family = ZOO[name]
    signature = inspect.signature(family)
    try:
        signature.bind(**args)
    except TypeError as err:
        raise ProbeError(f"Model '{name}' cannot be built from {args}: {err}.") from None
    for key, value in args.items():
        _check_size(name, key, value, str(signature.parameters[key].annotation))
    return family(**args)


def build_on_meta(model_args: dict[str, Any]) -> nn.Module:
    """:func:`build_model` on the ``meta`` device: shapes and dtypes only, no storage, no random numbers drawn.

    For weights about to be loaded: ``checkpoints.architecture.load_weights``
    gives such a model the file's tensors as its own. Drawing 100M random
    numbers only to overwrite them took seconds of ``probe info``.
    """
    with torch.device("meta"):
        return build_model(model_args)


def _check_size(model: str, key: str, value: Any, annotation: str) -> None:
    """Refuse a size that is not a whole number ≥ 1 (``depth``: ≥ 0), e.g. ``width=0`` or ``width=2.5``."""
    if "int" not in annotation:
        return
    sizes = value if "Sequence" in annotation and isinstance(value, (list, tuple)) else [value]
    lowest = 0 if key == "depth" else 1
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < lowest:
            raise ProbeError(f"Model '{model}' needs {key} to be a whole number of at least {lowest}, not {value!r}.")


def parse_zoo_spec(spec: str) -> dict[str, Any]:
    """Parse ``mlp:depth=16,width=256`` into ``{"name": "mlp", "depth": 16, "width": 256}``.

    Values become int, float, bool or (``1x8x8``) a list of ints where they read
    as one, else stay strings; see :mod:`landscape_probe.specs`.
    """
    name, options = parse_spec(spec, "model spec")
    return {"name": name, **options}


def complete_model_args(model_args: dict[str, Any], dataset: DataShape) -> dict[str, Any]:
    """Fill in the sizes the data set determines, keeping any the user gave.

    - every family: ``num_outputs`` = ``dataset.num_outputs``;
    - ``mlp``: ``in_features`` = the number of entries of one example;
    - ``cnn``: ``input_shape`` = (C, H, W) as is, (H, W) → (1, H, W), and a
      flat vector of n features → (1, √n, √n) when n is a square, else (1, n)
      (a 1-D signal);
    - ``transformer``: ``input_shape`` = (L, F) as is, a flat vector of n
      features → (n, 1) (n tokens of one feature), (L, …) → (L, prod(…)).

    Example:
        >>> class Data:
        ...     input_shape, num_outputs = (64,), 10
        >>> complete_model_args({"name": "cnn"}, Data())
        {'name': 'cnn', 'input_shape': [1, 8, 8], 'num_outputs': 10}
    """
    args = dict(model_args)
    name = args.get("name")
    if name not in ZOO:
        raise ProbeError(f"Unknown model '{name}'; the zoo has {', '.join(sorted(ZOO))}.")
    shape = [int(size) for size in dataset.input_shape]
    if name == "mlp":
        args.setdefault("in_features", math.prod(shape))
    elif name == "cnn":
        args.setdefault("input_shape", _image_shape(shape))
    else:
        args.setdefault("input_shape", [shape[0], math.prod(shape[1:])] if len(shape) > 1 else [shape[0], 1])
    args.setdefault("num_outputs", int(dataset.num_outputs))
    return args


def _image_shape(shape: list[int]) -> list[int]:
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        return [1, side, side] if side * side == shape[0] else [1, shape[0]]
    if len(shape) == 2:
        return [1, *shape]
    if len(shape) == 3:
        return shape
    raise ProbeError(f"A CNN takes examples shaped (C, H, W), (H, W) or flat vectors, not {tuple(shape)}.")
