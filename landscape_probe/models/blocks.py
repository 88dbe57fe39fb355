"""Building blocks shared by the zoo's families: activations, initialisation, normalisation.

Example:
    >>> from torch import nn
    >>> layer = nn.Linear(1000, 10)
    >>> init_linear_weight(layer.weight, "lecun")
    >>> round(float(layer.weight.detach().std() * 1000 ** 0.5), 1)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from landscape_probe.errors import ProbeError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}
INITS = ("lecun", "xavier", "kaiming", "orthogonal")
NORMALISATIONS = ("none", "batch", "layer")
_GAINED = ("relu", "leaky_relu", "tanh")


def check_choice(value: str, choices: Sequence[str], what: str) -> None:
    """Raise a one-sentence ProbeError when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ProbeError(f"Unknown {what} '{value}'; use one of {', '.join(choices)}.")


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name`` (relu, leaky_relu, tanh, gelu)."""
    check_choice(name, tuple(ACTIVATIONS), "activation")
    return ACTIVATIONS[name]()


def init_linear_weight(weight: Tensor, init: str, activation: str = "relu") -> None:
    """Initialise a weight matrix (or conv kernel) in place.

    With fan_in the number of inputs to one output unit (``weight[0].numel()``):

    - ``lecun``: N(0, 1/fan_in);
    - ``xavier``: N(0, 2/(fan_in + fan_out));
    - ``kaiming``: N(0, gain²/fan_in), gain the activation's (√2 for relu);
    - ``orthogonal``: a (semi-)orthogonal matrix times the activation's gain,
      so W Wᵀ = gain² I when W has no more rows than columns.

    GELU has no tabulated gain and uses relu's for kaiming and 1 for orthogonal.

    Raises:
        ProbeError: for an unknown ``init``.
    """
    check_choice(init, INITS, "init")
    if weight.is_meta:  # no values to draw (a model built only for its shapes); torch's meta kernels for it are slow
        return
    fan_in = weight[0].numel()
    if init == "lecun":
        nn.init.normal_(weight, std=1.0 / math.sqrt(fan_in))
    elif init == "xavier":
        nn.init.xavier_normal_(weight)
    elif init == "kaiming":
        nn.init.kaiming_normal_(weight, nonlinearity=activation if activation in _GAINED else "relu")
    else:
        gain = nn.init.calculate_gain(activation) if activation in _GAINED else 1.0
        nn.init.orthogonal_(weight, gain=gain)


def init_affine(module: nn.Module, init: str, activation: str) -> None:
    """Initialise a Linear or Conv layer: weight by ``init``, bias at zero."""
    init_linear_weight(module.weight, init, activation)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def make_normalisation(norm: str, channels: int, spatial_dims: int = 0) -> nn.Module:
    """Normalisation after a hidden layer with ``channels`` outputs.

    Args:
        norm: ``none`` (identity), ``batch`` or ``layer``.
        channels: features (MLP) or channels (CNN) it normalises.
        spatial_dims: 0 after a Linear layer, 1 or 2 after a 1-D or 2-D
            convolution. Batch norm then normalises each channel over
            (N, *spatial); layer norm normalises each example over its features,
            or over (C, *spatial) (GroupNorm with one group) after a convolution.
    """
    check_choice(norm, NORMALISATIONS, "norm")
    if norm == "none":
        return nn.Identity()
    if norm == "layer":
        return nn.GroupNorm(1, channels) if spatial_dims else nn.LayerNorm(channels)
    return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm1d(channels)
