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

The slice and the plane (:class:`ProbeShard`) also need sums over the
examples that are not gradients: each rank's loss, accuracy count, KL
divergence and squared output differences over its part are put together as

    mean over N = Σ_r (n_r / N)·(mean over rank r's part),
    count       = Σ_r (count on rank r's part),
    ||F||_F     = sqrt(Σ_r ||F_r||_F²)        (F_r: rank r's rows of F),

in one all-reduce of all of them, never as a mean of means.

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
    mine = distributed.contiguous_part(torch.arange(count))
    index = mine.to(x.device)
    return x[index], y[index.to(y.device)], len(mine) / count


class SummedGraph:
    """A rank's weighted gradient graph whose loss, gradient and Hessian-vector products are summed over ranks.

    It offers what the curvature estimators use of
    :class:`~landscape_probe.curvature.hessian.GradientGraph`: ``leaves``,
    ``loss``, ``gradient``, ``flat_hessian_vector_product``,
    ``add_hessian_vector_product`` and ``release``.

    Args:
        graph: the ``GradientGraph`` (or ``ChunkedHessian``) of L_r at W on this rank, or of (n_r / N)·L_r
            with ``weight`` 1 (as :meth:`at` builds it).
        weight: what multiplies this rank's loss, gradient and products before they are summed: n_r / N
            for a graph of L_r.
    """

    def __init__(self, graph: Any, weight: float = 1.0) -> None:
        from landscape_probe import params as P

        self.graph, self.leaves, self.weight = graph, graph.leaves, weight
        self.loss = distributed.all_reduce_sum(graph.loss * weight)
        self.gradient = P.unflatten(distributed.all_reduce_sum(P.flatten(graph.gradient) * weight), graph.leaves)

    @classmethod
    def at(cls, loss_fn: Any, params: Any, weight: float) -> SummedGraph:
        """The summed graph of ``weight · loss_fn`` at ``params`` (``loss_fn`` the mean over this rank's part)."""
        from landscape_probe.curvature.hessian import GradientGraph

        return cls(GradientGraph.at(lambda p: loss_fn(p) * weight, params))

    def release(self) -> None:
        self.graph.release()

    def flat_hessian_vector_product(self, vector: Any, out: Any = None) -> Any:
        """``H v`` on flat vectors: this rank's weighted product, summed over the ranks (into ``out`` when given)."""
        product = self.graph.flat_hessian_vector_product(vector, out=out)
        return distributed.all_reduce_sum(product if self.weight == 1.0 else product.mul_(self.weight))

    def add_hessian_vector_product(self, vector: Any, out: Any) -> Any:
        """``out += H v``, with the summed product."""
        return out.add_(self.flat_hessian_vector_product(vector))


class ProbeShard:
    """The examples of the probe set this rank evaluates, and how their numbers become the whole set's.

    ``shard="data"``: this rank's contiguous part (:func:`shard_of`); every rank evaluates every point
    on it, and :meth:`combined` sums the parts. ``shard="work"``: the whole probe set, and the points
    (or layers) are what the ranks divide (:meth:`share`, :meth:`gather_rows`, :meth:`gather_items`).

    Attributes:
        x, y: the examples this rank evaluates.
        count: N, the examples of the whole probe set.
        weight: n_r / N (1 for the whole set).
        divided: whether the probe set is divided (``shard="data"``).
    """

    def __init__(self, x: Any, y: Any, shard: str) -> None:
        self.count, self.divided = len(x), shard == "data"
        self.x, self.y, self.weight = shard_of(x, y) if self.divided else (x, y, 1.0)

    def share(self, items: list[Any]) -> list[Any]:
        """The points, cells or layers this rank evaluates: all of them when the probe set is divided."""
        return list(items) if self.divided else distributed.share(items)

    def gather_rows(self, indices: list[int] | None, rows: dict[str, Any], count: int) -> dict[str, Any]:
        """The rows of every rank (:func:`~landscape_probe.distributed.gather_rows`); ``indices`` None: all here."""
        return rows if indices is None or self.divided else distributed.gather_rows(indices, rows, count)

    def gather_items(self, part: dict[str, Any], order: list[str]) -> dict[str, Any]:
        """Every rank's items (:func:`~landscape_probe.distributed.gather_items`); all here when divided."""
        return {key: part[key] for key in order} if self.divided else distributed.gather_items(part, order)

    def evaluator(self, evaluator: Any) -> Any:
        """A ``ProbeEvaluator`` of this rank's examples whose loss, gradient and products are the whole set's."""
        return SummedEvaluator(evaluator, self.weight) if self.divided else evaluator

    def combined(self, values: dict[str, Any], *, means: tuple[str, ...] = (), totals: tuple[str, ...] = (),
                 norms: tuple[str, ...] = ()) -> dict[str, Any]:
        """``values`` of this rank's examples made the whole probe set's, in one all-reduce (float64 arrays).

        ``means``: means over this rank's examples (Σ_r (n_r / N)·mean_r); ``totals``: sums over them
        (Σ_r); ``norms``: Euclidean norms over them (sqrt(Σ_r norm_r²)). Other keys, and names ``values``
        lacks, are passed over. Without a divided probe set, every value is kept as it is.
        """
        if not self.divided:
            return values
        import numpy as np
        import torch

        names = [name for name in (*means, *totals, *norms) if name in values]
        parts = [np.asarray(values[name], dtype=np.float64) for name in names]
        scaled = [part * self.weight if name in means else part**2 if name in norms else part
                  for name, part in zip(names, parts)]
        flat = torch.from_numpy(np.concatenate([part.reshape(-1) for part in scaled])) if parts else torch.zeros(0)
        summed = distributed.all_reduce_sum(flat.to(self.x.device)).cpu().numpy()  # NCCL sums CUDA tensors only
        sizes = np.cumsum([0, *(part.size for part in parts)])
        whole = {name: summed[start:stop].reshape(part.shape)
                 for name, part, start, stop in zip(names, parts, sizes[:-1], sizes[1:])}
        return {**values, **{name: np.sqrt(whole[name]) if name in norms else whole[name] for name in names}}

    def norm(self, outputs: Any, dtype: Any = None) -> float:
        """||F||_F over the whole probe set, from this rank's rows F_r of it (each part's norm taken in ``dtype``)."""
        import torch

        local = float(torch.linalg.vector_norm(outputs, dtype=dtype))
        return float(self.combined({"norm": local}, norms=("norm",))["norm"])


class SummedEvaluator:
    """A ``ProbeEvaluator`` of rank r's part of the probe set, giving the whole set's loss, gradient and products.

    ``evaluate`` returns this rank's outputs (its rows of F) with the loss Σ_r (n_r / N)·L_r and the
    gradient Σ_r (n_r / N)·∇L_r (all-reduced, the same on every rank); ``evaluate_with_hessian`` also
    gives the :class:`SummedGraph` at W. The other attributes a slice reads are the wrapped evaluator's.

    Args:
        evaluator: the ``ProbeEvaluator`` of this rank's examples (its means are over them).
        weight: n_r / N.
    """

    def __init__(self, evaluator: Any, weight: float) -> None:
        self.evaluator, self.weight = evaluator, weight
        self.model, self.x, self.y = evaluator.model, evaluator.x, evaluator.y
        self.base, self.flat_base, self.layer_names = evaluator.base, evaluator.flat_base, evaluator.layer_names

    def evaluate(self, weights: Any, gradient_into: Any = None) -> Any:
        """Outputs on this rank's examples; the whole probe set's loss and gradient (into ``gradient_into``)."""
        import dataclasses

        from landscape_probe import params as P

        at = self.evaluator.evaluate(weights, gradient_into=gradient_into)
        flat = gradient_into if gradient_into is not None else P.flatten(at.gradient)
        distributed.all_reduce_sum(flat.mul_(self.weight))
        gradient = at.gradient if gradient_into is not None else P.unflatten(flat, at.gradient)
        return dataclasses.replace(at, loss=distributed.all_reduce_sum(at.loss * self.weight), gradient=gradient)

    def evaluate_with_hessian(self, weights: Any, keep_graph: bool = True) -> tuple[Any, SummedGraph]:
        """:meth:`evaluate` at ``weights`` with the summed graph there, for Hessian-vector products."""
        import dataclasses

        at, graph = self.evaluator.evaluate_with_hessian(weights, keep_graph)
        summed = SummedGraph(graph, self.weight)
        return dataclasses.replace(at, loss=summed.loss, gradient=summed.gradient), summed

    def give_weights_back(self) -> None:
        self.evaluator.give_weights_back()
