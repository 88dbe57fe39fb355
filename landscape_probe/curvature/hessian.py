"""Curvature of the loss along parameter dicts: Hessian-vector products and what they give.

Everything here is matrix-free: the Hessian H = ∇²loss(W) is never formed, only
applied to vectors, ``H v = d/dε ∇loss(W + ε v) |_{ε=0}`` (Pearlmutter 1994).
The product is computed reverse-over-reverse (double backward): one at a time
by :func:`hessian_vector_product`, or many on one kept gradient graph by
:class:`GradientGraph` (what λ_max, the trace and the slice's ``uᵀHu`` use); a
forward-over-reverse version with ``torch.func`` (a ``jvp`` of ``grad``) is
kept beside it for models where it pays off. The top eigenvalue comes from
Lanczos iteration (:mod:`landscape_probe.curvature.lanczos`).

A ``loss_fn`` maps a parameter dict to a scalar loss; the caller closes over
the model, the probe set and any parameters that stay fixed, e.g.::

    def loss_fn(p):
        return loss(torch.func.functional_call(model, {**fixed, **p}, (x,)), y)

Example:
    >>> import torch
    >>> a = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    >>> loss_fn = lambda p: 0.5 * p["w"] @ a @ p["w"]
    >>> value, vector = top_hessian_eigenvalue(loss_fn, {"w": torch.ones(2)}, tolerance=1e-8, iterations=200)
    >>> round(value, 4)
    -3.0
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape_probe import params as P
from landscape_probe.curvature.cotangent import backward_with
from landscape_probe.curvature.lanczos import LanczosResult, largest_magnitude_eigenpair, largest_magnitude_eigenvalue
from landscape_probe.curvature.random_vectors import gaussian_like, rademacher_like  # noqa: F401 - importable from here
from landscape_probe.devices import is_out_of_memory
from landscape_probe.params import Params

ParamsLossFn = Callable[[Params], Tensor]
"""A loss as a function of a parameter dict (model and data closed over); cf. ``losses.LossFn(outputs, targets)``."""


@contextlib.contextmanager
def differentiable_twice() -> Iterator[None]:
    """Run attention, inside the block, through kernels that autograd can differentiate twice.

    ``F.scaled_dot_product_attention`` (used by ``nn.MultiheadAttention`` and so
    by ``nn.TransformerEncoder``) dispatches to fused kernels — flash attention,
    on the CPU too, memory-efficient, cuDNN — whose backward has no derivative
    of its own, so a Hessian-vector product through them fails. The math
    backend is plain differentiable operations and gives the same values to
    rounding. Every second derivative in the package (Hessian-vector products,
    hence λ_max, ``uᵀHu``, eigenvector directions, training sharpness) is taken
    inside this block.

    ``nn.TransformerEncoderLayer``'s eval-mode fast path
    (``torch._transformer_encoder_layer_fwd``) has no double backward either,
    but torch takes it only when grad is disabled or no tensor it reads
    requires grad, i.e. when nothing is differentiated through that layer, so
    it needs no switch here (tested).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def hessian_vector_product(loss_fn: ParamsLossFn, params: Params, vector: Params) -> Params:
    """The Hessian of the loss at ``params`` applied to ``vector``: ``H v``.

    ``(H v)_l = Σ_m ∂²loss / ∂W_l ∂W_m · v_m``, computed reverse-over-reverse
    as ``∇_W (∇loss(W) · v)`` (Pearlmutter 1994), without forming H. It needs
    only backward derivatives, so it covers every operator autograd does,
    TorchScript modules included, and on the CPU it is about twice as fast as
    the forward-over-reverse product, with no one-off set-up cost
    (``benchmarks/bench_hvp.py``). Works whether or not ``params`` require
    grad and inside ``torch.no_grad()``.

    Args:
        loss_fn: parameter dict → scalar loss.
        params: the point W at which the Hessian is taken.
        vector: v, same keys and shapes as ``params``.

    Returns:
        ``H v`` as a parameter dict.
    """
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad(), differentiable_twice():
        loss = loss_fn(leaves)
        gradient = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, allow_unused=True)
        directional = sum(
            (torch.sum(g * vector[k]) for k, g in zip(leaves, gradient) if g is not None and g.requires_grad),
            start=torch.zeros((), dtype=loss.dtype, device=loss.device),
        )
        if not directional.requires_grad:
            return P.zeros_like(params)
        second = torch.autograd.grad(directional, list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if s is None else s.detach() for (k, v), s in zip(leaves.items(), second)}


def hessian_vector_product_forward_over_reverse(loss_fn: ParamsLossFn, params: Params, vector: Params) -> Params:
    """``H v`` forward-over-reverse: the directional derivative of the gradient, ``jvp(grad(loss_fn), W, v)``.

    Same arguments and result as :func:`hessian_vector_product`, to which it
    falls back where ``torch.func`` cannot follow the model (TorchScript).
    """
    primal = {k: v.detach() for k, v in params.items()}
    tangent = {k: vector[k].detach().to(dtype=v.dtype, device=v.device) for k, v in primal.items()}
    try:
        with torch.enable_grad(), differentiable_twice():
            _, product = torch.func.jvp(torch.func.grad(loss_fn), (primal,), (tangent,))
        return {k: t.detach() for k, t in product.items()}
    except (NotImplementedError, RuntimeError) as err:
        if is_out_of_memory(err):
            raise
        return hessian_vector_product(loss_fn, primal, tangent)


def directional_curvature(loss_fn: ParamsLossFn, params: Params, direction: Params) -> float:
    """The curvature of the loss along ``direction``: ``dᵀ H d`` (one Hessian-vector product).

    Not normalised: for a unit curvature divide by ``||d||²``. This is the
    second-order coefficient of the Taylor model
    ``loss(W + t d) ≈ loss(W) + t ∇loss·d + ½ t² dᵀ H d``.
    """
    return float(P.dot(direction, hessian_vector_product(loss_fn, params, direction)))


class GradientGraph:
    """The gradient ∇L(W) with its autograd graph kept, so that each ``H v`` is one backward pass through it.

    ``H v = ∇_W (∇L(W) · v)`` (Pearlmutter 1994) is the vector–Jacobian product
    of the gradient with v: ``torch.autograd.grad(gradient, W, v)``. Building
    the gradient with ``create_graph=True`` once and keeping the graph
    (``retain_graph=True``), every further product skips the forward pass and
    the first backward pass that :func:`hessian_vector_product` redoes each
    time: on the 16-layer sample a product costs half as much, with the same
    numbers (``benchmarks/run.py``). The graph holds the activations of the
    whole probe set until the object is dropped.

    Args:
        loss: L(W), a 0-d tensor computed from ``leaves`` under ``torch.enable_grad()``.
        leaves: the tensors W (requiring grad) that ``loss`` was computed from.

    Example:
        >>> import torch
        >>> graph = GradientGraph.at(lambda p: (p["w"] ** 3).sum(), {"w": torch.tensor([1.0, 2.0])})
        >>> graph.hessian_vector_product({"w": torch.tensor([1.0, 1.0])})["w"].tolist()
        [6.0, 12.0]
    """

    def __init__(self, loss: Tensor, leaves: Params) -> None:
        self.leaves = leaves
        self.loss = loss.detach()
        with torch.enable_grad():
            parts = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, allow_unused=True)
        self._differentiable = [
            (index, part) for index, part in enumerate(parts) if part is not None and part.requires_grad
        ]
        self.gradient: Params = {
            k: torch.zeros_like(v) if part is None else part.detach() for (k, v), part in zip(leaves.items(), parts)
        }
        self.released = False
        self._shapes = [v.shape for v in leaves.values()]
        self._sizes = [v.numel() for v in leaves.values()]

    @classmethod
    def at(cls, loss_fn: ParamsLossFn, params: Params) -> GradientGraph:
        """The graph of ``loss_fn`` at ``params``; their detached aliases become the leaves (nothing is copied)."""
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad(), differentiable_twice():
            return cls(loss_fn(leaves), leaves)

    def release(self) -> None:
        """Drop the kept graph (and the activations it holds); a product asked for afterwards raises."""
        self._differentiable, self.released = [], True

    def hessian_vector_product(self, vector: Params) -> Params:
        """``H v`` as a parameter dict, for v with the keys and shapes of the leaves."""
        return P.unflatten(self.flat_hessian_vector_product(P.flatten(vector)), self.leaves)

    def flat_hessian_vector_product(self, vector: Tensor, out: Tensor | None = None) -> Tensor:
        """``H v`` on flat vectors (the layers concatenated in key order, as ``params.flatten``).

        ``out``, a flat buffer of v's size, receives the product (overwritten) and is returned; none: a new tensor.
        """
        product = torch.zeros_like(vector) if out is None else out.zero_()
        return self.add_hessian_vector_product(vector, product)

    def add_hessian_vector_product(self, vector: Tensor, out: Tensor) -> Tensor:
        """``out += H v`` on flat vectors, in place: the product is accumulated straight into ``out``.

        Each layer's part of ``out`` is lent to its leaf as ``.grad`` for one
        backward pass, which adds the layer's product into it in place (autograd's
        accumulation outside ``create_graph``), so no full-size tensor is made per
        product: at 100M parameters the fresh tensors per product, and the page
        faults of mapping them, were most of the time. With ``out`` zero the
        numbers are those of ``torch.autograd.grad`` (0 + x = x).
        """
        if self.released:
            raise RuntimeError("This gradient graph was released; build a new one for more Hessian-vector products.")
        if not self._differentiable:
            return out
        pieces = [piece.view(shape) for piece, shape in zip(vector.split(self._sizes), self._shapes)]
        leaves = list(self.leaves.values())
        for leaf, piece, shape in zip(leaves, out.split(self._sizes), self._shapes):
            leaf.grad = piece.view(shape)
        try:  # backward_with enables grad itself, so this works under no_grad too
            backward_with([part for _, part in self._differentiable],  # v as g's gradient (see cotangent)
                          [pieces[index] for index, _ in self._differentiable], inputs=leaves, retain_graph=True)
        finally:
            for leaf in leaves:
                leaf.grad = None
        return out


def top_hessian_eigenvalue(
    loss_fn: ParamsLossFn,
    params: Params,
    *,
    iterations: int = 50,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> tuple[float, Params]:
    """The Hessian eigenvalue of largest magnitude, with its sign, by Lanczos iteration.

    The estimate is the Ritz value of largest magnitude of the Krylov space of
    H started from a Gaussian vector (seeded), with the products taken on one
    kept gradient graph (:class:`GradientGraph`, :func:`top_eigenpair`). It can
    be negative (a direction of strong negative curvature); ``|λ|`` is the
    local gradient-Lipschitz constant λ_max of DESIGN.md §4. It stops when the
    estimate's error is estimated at most ``tolerance`` relative, or after
    ``iterations`` products (:mod:`landscape_probe.curvature.lanczos`). The
    eigenvector is accurate to about the square root of that: its residual
    ``||H v − λ v||`` is about ``sqrt(tolerance · gap · |λ|)``.

    Args:
        loss_fn: parameter dict → scalar loss.
        params: the point W.
        iterations: the most Hessian-vector products to spend.
        tolerance: relative error of λ, as the stopping rule estimates it, at which to stop.
        seed: seed of the starting vector; the result is deterministic in it.

    Returns:
        ``(λ, v)``: the eigenvalue and a unit eigenvector (a parameter dict).
        A zero Hessian gives ``(0.0, v)`` with v a unit vector.
    """
    top = top_eigenpair(GradientGraph.at(loss_fn, params), iterations=iterations, tolerance=tolerance, seed=seed)
    return top.eigenvalue, top.eigenvector


@dataclass(frozen=True)
class TopEigenpair:
    """What :func:`top_eigenpair` finds: λ (sign kept), its unit eigenvector (None without the basis), the record."""

    eigenvalue: float
    eigenvector: Params | None
    lanczos: LanczosResult


def top_eigenpair(
    graph: GradientGraph,
    *,
    iterations: int = 50,
    tolerance: float = 1e-4,
    seed: int = 0,
    start: Params | Tensor | None = None,
    keep_basis: bool = True,
    work: tuple[Tensor, Tensor] | None = None,
) -> TopEigenpair:
    """The Hessian eigenpair of largest ``|λ|`` at the graph's point, by Lanczos on its products.

    Args:
        graph: the kept gradient graph at W.
        iterations, tolerance: as in :func:`top_hessian_eigenvalue`.
        seed: seed of the Gaussian start, and of a restart when the Krylov space closes early.
        start: the first Krylov vector instead of the Gaussian one (a parameter dict, or flat as
            ``params.flatten`` lays it out), e.g. the slice's step u, whose
            curvature ``uᵀHu = α₁ ||u||²`` then comes free with the first product
            (``TopEigenpair.lanczos.start_rayleigh_quotient``). A gradient lies mostly in the top
            eigenspace of the Hessian (Gur-Ari, Roberts & Dyer 2018), so it is a good start too.
        keep_basis: False: the three-term recurrence in two vectors, with no eigenvector and no
            restart (:func:`~landscape_probe.curvature.lanczos.largest_magnitude_eigenvalue`), for
            models whose basis would not fit in memory (:func:`~landscape_probe.curvature.lanczos.basis_fits`),
            run in the two flat ``work`` buffers when given.
    """
    leaves = graph.leaves
    if not isinstance(start, Tensor):
        start = P.flatten(gaussian_like(leaves, seed) if start is None else start)
    if not keep_basis:
        result = largest_magnitude_eigenvalue(graph.add_hessian_vector_product, start, iterations=iterations,
                                              tolerance=tolerance, work=work)
        return TopEigenpair(result.eigenvalue, None, result)
    restarts = iter(range(seed + 1, seed + 1 + max(iterations, 1)))
    result = largest_magnitude_eigenpair(
        graph.flat_hessian_vector_product,
        start,
        iterations=iterations,
        tolerance=tolerance,
        restart=lambda: P.flatten(gaussian_like(leaves, next(restarts))),
    )
    eigenvector = {k: v.detach() for k, v in P.unflatten(result.eigenvector, leaves).items()}
    return TopEigenpair(result.eigenvalue, eigenvector, result)


def hessian_trace(loss_fn: ParamsLossFn, params: Params, *, samples: int = 100, seed: int = 0) -> float:
    """Hutchinson's estimate of the Hessian trace: the mean of ``zᵀ H z`` over Rademacher z.

    ``E[zᵀ H z] = tr H`` for z with independent ±1 entries (Hutchinson 1989);
    the estimate's variance is ``2 Σ_{i≠j} H_ij² / samples``, so the error
    shrinks as ``1/sqrt(samples)``. Each sample costs one Hessian-vector
    product on one kept gradient graph; sample i uses the seed ``seed + i``.
    """
    if samples < 1:
        raise ValueError("hessian_trace needs at least one sample")
    graph = GradientGraph.at(loss_fn, params)
    total = 0.0
    for i in range(samples):
        z = rademacher_like(params, seed + i)
        total += float(P.dot(z, graph.hessian_vector_product(z)))
    return total / samples
