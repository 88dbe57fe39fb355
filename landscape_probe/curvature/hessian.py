"""Curvature of the loss along parameter dicts: Hessian-vector products and what they give.

Everything here is matrix-free: the Hessian H = ∇²loss(W) is never formed, only
applied to vectors, ``H v = d/dε ∇loss(W + ε v) |_{ε=0}`` (Pearlmutter 1994).
The product is computed reverse-over-reverse (double backward); a
forward-over-reverse version with ``torch.func`` (a ``jvp`` of ``grad``) is
kept beside it for models where it pays off.

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
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from landscape_probe import params as P
from landscape_probe.params import Params

ParamsLossFn = Callable[[Params], Tensor]
"""A loss as a function of a parameter dict (model and data closed over); cf. ``losses.LossFn(outputs, targets)``."""


def gaussian_like(params: Params, seed: int) -> Params:
    """Standard normal tensors shaped like ``params``, reproducible by ``seed``.

    The numbers are drawn on the CPU from one ``torch.Generator`` seeded once,
    layer after layer in key order, then moved to each tensor's device and
    dtype, so the same seed gives the same vector on CPU and CUDA.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=generator, dtype=_draw_dtype(v)).to(device=v.device, dtype=v.dtype)
        for k, v in params.items()
    }


def rademacher_like(params: Params, seed: int) -> Params:
    """Independent ±1 entries (each with probability ½) shaped like ``params``; see :func:`gaussian_like`."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return {
        k: (2 * torch.randint(0, 2, v.shape, generator=generator) - 1).to(device=v.device, dtype=v.dtype)
        for k, v in params.items()
    }


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
    except torch.OutOfMemoryError:
        raise
    except (NotImplementedError, RuntimeError):
        return hessian_vector_product(loss_fn, primal, tangent)


def directional_curvature(loss_fn: ParamsLossFn, params: Params, direction: Params) -> float:
    """The curvature of the loss along ``direction``: ``dᵀ H d`` (one Hessian-vector product).

    Not normalised: for a unit curvature divide by ``||d||²``. This is the
    second-order coefficient of the Taylor model
    ``loss(W + t d) ≈ loss(W) + t ∇loss·d + ½ t² dᵀ H d``.
    """
    return float(P.dot(direction, hessian_vector_product(loss_fn, params, direction)))


def top_hessian_eigenvalue(
    loss_fn: ParamsLossFn,
    params: Params,
    *,
    iterations: int = 50,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> tuple[float, Params]:
    """The Hessian eigenvalue of largest magnitude, with its sign, by power iteration.

    Starting from a Gaussian vector v₀ (seeded), iterate ``v ← H v / ||H v||``;
    the estimate is the Rayleigh quotient ``λ = vᵀ H v`` of the unit vector v.
    Power iteration converges to the eigenvalue of largest ``|λ|``, which can
    be negative (a direction of strong negative curvature); the sign is kept,
    so ``|λ|`` is the local gradient-Lipschitz constant λ_max of DESIGN.md §4.
    It stops when the residual ``||H v − λ v|| ≤ tolerance · |λ|`` (then λ is
    accurate to about ``tolerance²`` relatively) or after ``iterations``
    products. Convergence is slow when the two largest ``|λ|`` are close, and
    fails to settle when ``λ`` and ``−λ`` are both eigenvalues.

    Args:
        loss_fn: parameter dict → scalar loss.
        params: the point W.
        iterations: the most Hessian-vector products to spend.
        tolerance: relative residual at which to stop.
        seed: seed of the starting vector; the result is deterministic in it.

    Returns:
        ``(λ, v)``: the eigenvalue and a unit eigenvector (a parameter dict).
        A zero Hessian gives ``(0.0, v₀/||v₀||)``.
    """
    start = gaussian_like(params, seed)
    vector = P.scale(1.0 / P.norm(start), start)
    eigenvalue = 0.0
    for i in range(max(iterations, 1)):
        product = hessian_vector_product(loss_fn, params, vector)
        eigenvalue = float(P.dot(vector, product))
        residual = float(P.norm(P.axpy(-eigenvalue, vector, product)))
        product_norm = float(P.norm(product))
        converged = residual <= tolerance * abs(eigenvalue)
        if converged or product_norm == 0.0 or not math.isfinite(product_norm) or i == iterations - 1:
            break
        vector = P.scale(1.0 / product_norm, product)
    return eigenvalue, vector


def hessian_trace(loss_fn: ParamsLossFn, params: Params, *, samples: int = 100, seed: int = 0) -> float:
    """Hutchinson's estimate of the Hessian trace: the mean of ``zᵀ H z`` over Rademacher z.

    ``E[zᵀ H z] = tr H`` for z with independent ±1 entries (Hutchinson 1989);
    the estimate's variance is ``2 Σ_{i≠j} H_ij² / samples``, so the error
    shrinks as ``1/sqrt(samples)``. Each sample costs one Hessian-vector
    product; sample i uses the seed ``seed + i``.
    """
    if samples < 1:
        raise ValueError("hessian_trace needs at least one sample")
    total = 0.0
    for i in range(samples):
        z = rademacher_like(params, seed + i)
        total += float(P.dot(z, hessian_vector_product(loss_fn, params, z)))
    return total / samples


def _draw_dtype(tensor: Tensor) -> torch.dtype:
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32
