"""``--shard data``: each rank holds a part of the probe set, and gradients and Hessian-vector products are summed.

The mean loss over the N examples of the probe set is

    L(W) = (1/N) Σ_n ℓ_n(W) = Σ_r (n_r / N) · L_r(W),

L_r the mean over rank r's n_r examples. So ∇L and every H v are sums over
the ranks of (n_r / N)·∇L_r and (n_r / N)·H_r v: each rank builds the
gradient graph of its own part, weighted by n_r / N, and every gradient and
product is all-reduced (summed) over the ranks (:class:`SummedGraph`). Every
rank then holds the same numbers, so an estimator (Lanczos, Hutchinson) run
on them takes the same steps on every rank, and its result equals the single
process's up to the order of the floating-point sums.

Without ``torchrun`` the shard is the whole probe set with weight 1 and the
sums are the identity.

Example:
    >>> import torch
    >>> x, y = torch.arange(5.0), torch.arange(5)
    >>> part_x, part_y, weight = shard_of(x, y)
    >>> part_x.tolist(), weight
    ([0.0, 1.0, 2.0, 3.0, 4.0], 1.0)
"""

from __future__ import annotations

from typing import Any

from landscape_probe import distributed
from landscape_probe.errors import ProbeError


def shard_of(x: Any, y: Any) -> tuple[Any, Any, float]:
    """This rank's contiguous part of the probe set (x, y) and its weight n_r / N.

    Raises:
        ProbeError: when there are more ranks than examples (a rank would hold none).
    """
    import torch

    count, ranks = len(x), distributed.world_size()
    if count < ranks:
        raise ProbeError(f"--shard data needs at least one example per rank: the probe set holds {count} "
                         f"examples for {ranks} ranks.")
    mine = torch.arange(count).tensor_split(ranks)[distributed.rank()]
    index = mine.to(x.device)
    return x[index], y[index.to(y.device)], len(mine) / count


class SummedGraph:
    """A rank's weighted gradient graph whose loss, gradient and Hessian-vector products are summed over ranks.

    It offers what the curvature estimators use of
    :class:`~landscape_probe.curvature.hessian.GradientGraph`: ``leaves``,
    ``loss``, ``gradient``, ``hessian_vector_product``,
    ``flat_hessian_vector_product`` and ``release``.

    Args:
        graph: the ``GradientGraph`` of (n_r / N)·L_r at W on this rank.
    """

    def __init__(self, graph: Any) -> None:
        from landscape_probe import params as P

        self.graph, self.leaves = graph, graph.leaves
        self.loss = distributed.all_reduce_sum(graph.loss.clone())
        self.gradient = P.unflatten(distributed.all_reduce_sum(P.flatten(graph.gradient)), graph.leaves)

    @classmethod
    def at(cls, loss_fn: Any, params: Any, weight: float) -> SummedGraph:
        """The summed graph of ``weight · loss_fn`` at ``params`` (``loss_fn`` the mean over this rank's part)."""
        from landscape_probe.curvature.hessian import GradientGraph

        return cls(GradientGraph.at(lambda p: loss_fn(p) * weight, params))

    def release(self) -> None:
        self.graph.release()

    def flat_hessian_vector_product(self, vector: Any) -> Any:
        """``H v`` on flat vectors: this rank's weighted product, summed over the ranks."""
        return distributed.all_reduce_sum(self.graph.flat_hessian_vector_product(vector))

    def hessian_vector_product(self, vector: Any) -> Any:
        from landscape_probe import params as P

        return P.unflatten(self.flat_hessian_vector_product(P.flatten(vector)), self.leaves)
