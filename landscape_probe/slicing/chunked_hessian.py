"""Hessian-vector products over a probe set taken in chunks, holding one chunk's graph at a time.

The mean loss over N examples in chunks b of n_b is L = Σ_b (n_b / N) L_b, so

    H v = Σ_b (n_b / N) H_b v,

each term one chunk's forward pass, gradient with its graph, and one more
backward pass through it (:class:`~landscape_probe.curvature.hessian.GradientGraph`),
accumulated into the same buffer. Memory is one chunk's activations and graph
instead of the whole probe set's (what the graph kept at W by
:meth:`ProbeEvaluator.evaluate_with_hessian` holds), for about 1.7× the time
of a product on a kept graph (``benchmarks/RESULTS.md``, the one-shot row).
``run_slice`` uses it when the probe set is larger than ``--chunk-size``.

Example:
    >>> import torch
    >>> from landscape_probe.slicing.evaluator import ProbeEvaluator
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    >>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    >>> chunked = ProbeEvaluator(model, x, y, "cross_entropy", ["0.weight", "2.weight"], batch_size=3)
    >>> whole = ProbeEvaluator(model, x, y, "cross_entropy", ["0.weight", "2.weight"])
    >>> v = torch.randn(20, dtype=torch.float64)
    >>> products = [e.evaluate_with_hessian(e.base, keep_graph=e is whole)[1].flat_hessian_vector_product(v)
    ...             for e in (chunked, whole)]
    >>> bool(torch.allclose(*products, rtol=1e-12, atol=1e-14))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from landscape_probe.curvature.hessian import GradientGraph, differentiable_twice
from landscape_probe.params import Params

if TYPE_CHECKING:
    from landscape_probe.slicing.evaluator import Evaluation, ProbeEvaluator


class ChunkedHessian:
    """The products of :class:`GradientGraph` (same methods), each taken chunk by chunk at fixed weights W.

    Args:
        evaluator: the model, probe set and chunking.
        weights: W, the point of the Hessian (aliased, not copied).
        at_w: the evaluation at W, whose loss and gradient the object reports.
    """

    def __init__(self, evaluator: ProbeEvaluator, weights: Params, at_w: Evaluation) -> None:
        self.evaluator = evaluator
        self.leaves: Params = {k: v.detach() for k, v in weights.items()}
        self.loss, self.gradient = at_w.loss, at_w.gradient
        self.released = False

    def release(self) -> None:
        """Mark it released (it keeps no graph); a product asked for afterwards raises, as on a kept graph."""
        self.released = True

    def flat_hessian_vector_product(self, vector: Tensor, out: Tensor | None = None) -> Tensor:
        """``H v`` on flat vectors, into ``out`` (overwritten) when given."""
        return self.add_hessian_vector_product(vector, torch.zeros_like(vector) if out is None else out.zero_())

    def add_hessian_vector_product(self, vector: Tensor, out: Tensor) -> Tensor:
        """``out += H v``: each chunk's share ``(n_b / N) H_b v`` added in turn, its graph freed before the next."""
        if self.released:
            raise RuntimeError("This Hessian was released; build a new one for more Hessian-vector products.")
        evaluator = self.evaluator
        for x, y in evaluator.batches():
            leaves = {k: v.detach().requires_grad_(True) for k, v in self.leaves.items()}
            with torch.enable_grad(), differentiable_twice():
                graph = GradientGraph(evaluator.batch_loss(evaluator.forward(leaves, x), y), leaves)
            graph.add_hessian_vector_product(vector, out)
        return out
