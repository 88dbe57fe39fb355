"""A small transformer encoder for sequence classification or regression.

Example:
    >>> import torch
    >>> net = Transformer(input_shape=[40, 1], num_outputs=10, d_model=16, depth=2, heads=2, ff_width=32)
    >>> net(torch.zeros(3, 40)).shape
    torch.Size([3, 10])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.blocks import init_affine, make_activation


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output matrices.

    For one head h with d_h = d_model / heads and Q = X W_qᵀ, K = X W_kᵀ, V = X W_vᵀ
    split into heads: head_h = softmax(Q_h K_hᵀ / √d_h) V_h, and the output is
    concat_h(head_h) W_oᵀ (Vaswani et al., 2017). Keeping the four matrices
    separate makes each its own layer for deep relative trust.
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if heads < 1 or d_model % heads:
            raise ProbeError(f"d_model={d_model} must be a positive multiple of heads={heads}.")
        self.heads = heads
        self.head_dim = d_model // heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split_heads(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], t.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._split_heads(self.query(x)), self._split_heads(self.key(x)), self._split_heads(self.value(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(x.shape))


class EncoderBlock(nn.Module):
    """Pre-norm encoder block: h ← h + attention(LN(h)); h ← h + W₂ act(W₁ LN(h))."""

    def __init__(self, d_model: int, heads: int, ff_width: int, activation: str) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, heads)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff_in = nn.Linear(d_model, ff_width)
        self.activation = make_activation(activation)
        self.ff_out = nn.Linear(ff_width, d_model)

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attention(self.attention_norm(h))
        return h + self.ff_out(self.activation(self.ff_in(self.ff_norm(h))))


class Transformer(nn.Module):
    """Embed tokens, add learned positions, ``depth`` encoder blocks, mean-pool, linear head.

    output = W_out · mean_t LN(block_depth(… block_1(E x_t + p_t))). Flat
    inputs (N, L·F) are read as L tokens of F features each (F = 1 turns
    digits' 64 pixels or MNIST-1D's 40 samples into a sequence). There is no
    dropout, so the network is deterministic.

    Args:
        input_shape: (seq_len, token_features).
        num_outputs: output size (classes, or regression targets).
        d_model: embedding width.
        depth: number of encoder blocks.
        heads: attention heads (must divide d_model).
        ff_width: hidden width of each block's feed-forward layer.
        activation: feed-forward activation: relu, leaky_relu, tanh or gelu.
        init: init of every Linear weight (lecun, xavier, kaiming, orthogonal);
            positions start N(0, 0.02²), biases at zero.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        d_model: int = 32,
        depth: int = 2,
        heads: int = 4,
        ff_width: int = 64,
        activation: str = "gelu",
        init: str = "lecun",
    ) -> None:
        super().__init__()
        shape = [int(size) for size in input_shape]
        if len(shape) != 2 or min(shape) < 1:
            raise ProbeError(f"A transformer needs input_shape (seq_len, token_features), got {input_shape}.")
        if depth < 0:
            raise ProbeError(f"A transformer needs depth >= 0, got {depth}.")
        self.input_shape = shape
        self.embed = nn.Linear(shape[1], d_model)
        self.position = nn.Parameter(torch.empty(shape[0], d_model))
        self.blocks = nn.ModuleList(EncoderBlock(d_model, heads, ff_width, activation) for _ in range(depth))
        self.final_norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, num_outputs)
        nn.init.normal_(self.position, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init_affine(module, init, activation)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x.reshape([x.shape[0]] + self.input_shape)) + self.position
        for block in self.blocks:
            h = block(h)
        return self.output(self.final_norm(h).mean(dim=1))
