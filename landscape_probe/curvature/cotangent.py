"""Backpropagate given vectors from given tensors: ``torch.autograd.backward(tensors, vectors)`` without
the cost torch's own call has on the first use in a process.

``torch.autograd.backward(tensors, grad_tensors=vectors)`` checks each given
gradient's shape through ``torch.fx.experimental.symbolic_shapes``, whose first
import brings in sympy: 0.85 s of every ``probe slice``, ``probe hessian`` or
``probe plane`` that takes a Hessian-vector product (``probe train`` pays a
similar import anyway: ``torch.optim`` imports ``torch._dynamo``). Backpropagating
from the scalar ``Σ <t, v>`` instead avoids the check but makes a full-size
product per tensor and, in its backward pass, a full-size ``1 · v`` per tensor:
at 100M parameters (``benchmarks/big.py``) that raised the peak memory of ``probe
slice`` from 7.2–7.9 to 9.0–9.4 times the parameter bytes. :func:`backward_with`
starts from a scalar too, whose backward hands the vectors themselves to the
tensors as their gradients: the same numbers, bit for bit, as torch's own call,
no copy, and the same peak within its spread (7.5–8.2 times).

Example:
    >>> import torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> backward_with([w ** 2], [torch.tensor([1.0, 3.0])], inputs=[w])
    >>> w.grad.tolist()
    [2.0, 12.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch import Tensor


class _HandOver(torch.autograd.Function):
    """A scalar zero of ``tensors``; its backward, from 1, gives each tensor its vector as its gradient."""

    @staticmethod
    def forward(ctx: Any, vectors: tuple[Tensor, ...], *tensors: Tensor) -> Tensor:
        # a plain attribute, not save_for_backward: the vectors are no part of any graph (and may be
        # inference tensors, which save_for_backward refuses)
        ctx.vectors = vectors
        return tensors[0].new_zeros(())

    @staticmethod
    def backward(ctx: Any, one: Tensor) -> tuple[Tensor | None, ...]:
        # ``one`` is the 1 that backward() starts from (this scalar is only ever the root), so the vectors
        # are passed as they are, as torch passes given gradients
        return (None, *ctx.vectors)


def backward_with(tensors: Sequence[Tensor], vectors: Sequence[Tensor], *, inputs: Sequence[Tensor],
                  retain_graph: bool = False) -> None:
    """Accumulate ``Σ_i vectors_i · ∂tensors_i/∂x`` into each ``x.grad`` of ``inputs``.

    Every tensor must require grad, and ``vectors[i]`` must have the shape of ``tensors[i]``: that is not
    checked (the check is the cost this avoids), and a vector of another shape that broadcasts is summed
    to the tensor's shape by autograd instead of being refused. A vector of another dtype is cast, as
    torch casts it. Nothing to do for no tensors.
    """
    if not tensors:
        return
    with torch.enable_grad():  # as torch's own call, also under no_grad (the graph was built before)
        root = _HandOver.apply(tuple(vectors), *tensors)
        torch.autograd.backward(root, retain_graph=retain_graph, inputs=list(inputs))
