"""A small convolutional network for images (C, H, W) or signals (C, L).

Example:
    >>> import torch
    >>> net = CNN(input_shape=[1, 8, 8], num_outputs=10, depth=2, channels=8)
    >>> net(torch.zeros(5, 64)).shape
    torch.Size([5, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.blocks import init_affine, make_activation, make_normalisation

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}


class CNN(nn.Module):
    """``depth`` blocks of conv (kernel 3, same padding) → norm → activation → max-pool, then a linear head.

    Each block halves the spatial size with a 2×2 (or 2) max-pool while every
    spatial side is still at least 2. The head averages the last feature map
    over its spatial positions and maps the channels to the outputs:
    ``output(mean_{positions} h)``. Flat inputs (N, prod(input_shape)) are
    reshaped to (N, *input_shape), so the same network takes digits' 64
    features as an 8×8 image.

    Parameters are named ``convs.N.weight``/``bias`` (kernels C_out × C_in × 3 [× 3]),
    ``norms.N.*`` and ``output.weight``/``bias``.

    Args:
        input_shape: (C, H, W) for 2-D or (C, L) for 1-D convolutions.
        num_outputs: output size (classes, or regression targets).
        depth: number of conv blocks.
        channels: output channels of every block (an int), or one per block (a
            list, whose length must then equal ``depth``).
        activation: relu, leaky_relu, tanh or gelu.
        init: lecun, xavier, kaiming or orthogonal (biases start at zero).
        norm: none, batch or layer (GroupNorm with one group).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        depth: int = 2,
        channels: int | Sequence[int] = 16,
        activation: str = "relu",
        init: str = "lecun",
        norm: str = "none",
    ) -> None:
        super().__init__()
        shape = [int(size) for size in input_shape]
        if len(shape) - 1 not in _CONV or min(shape) < 1:
            raise ProbeError(f"A CNN needs input_shape (C, H, W) or (C, L) with positive sizes, got {input_shape}.")
        widths = [int(channels)] * depth if isinstance(channels, int) else [int(c) for c in channels]
        if len(widths) != depth or depth < 1:
            raise ProbeError(
                f"A CNN needs depth >= 1 and one channel count per block, got depth={depth}, channels={channels}."
            )
        self.input_shape = shape
        spatial_dims = len(shape) - 1
        conv, pool = _CONV[spatial_dims], _POOL[spatial_dims]
        sizes = shape[1:]
        convs, norms, pools = [], [], []
        for c_in, c_out in zip([shape[0], *widths[:-1]], widths):
            convs.append(conv(c_in, c_out, kernel_size=3, padding=1))
            norms.append(make_normalisation(norm, c_out, spatial_dims))
            if min(sizes) >= 2:
                pools.append(pool(2))
                sizes = [size // 2 for size in sizes]
            else:
                pools.append(nn.Identity())
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.pools = nn.ModuleList(pools)
        self.activation = make_activation(activation)
        self.output = nn.Linear(widths[-1], num_outputs)
        for layer in [*self.convs, self.output]:
            init_affine(layer, init, activation)

    def forward(self, x: Tensor) -> Tensor:
        h = x.reshape([x.shape[0]] + self.input_shape)
        for conv, norm, pool in zip(self.convs, self.norms, self.pools):
            h = pool(self.activation(norm(conv(h))))
        return self.output(h.flatten(2).mean(dim=2))
