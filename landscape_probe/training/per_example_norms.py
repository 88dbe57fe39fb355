"""Per-example gradient norms from one backward pass, without forming the per-example gradients.

For a Linear layer z = W a + b applied at positions t = 1 … T of example i
(T = 1 for a plain batch), the example's gradient is
``∇_W ℓ_i = Σ_t δ_{i,t} a_{i,t}ᵀ`` with ``δ_{i,t} = ∂ℓ_i / ∂z_{i,t}``, so

    ||∇_W ℓ_i||² = Σ_{t,s} (a_{i,t}·a_{i,s}) (δ_{i,t}·δ_{i,s})     (= ||a_i||² ||δ_i||² for T = 1)

and ``||∇_b ℓ_i||² = ||Σ_t δ_{i,t}||²`` (Goodfellow 2015; the "ghost norm" of
Li et al. 2022). A convolution (1-D or 2-D, ungrouped) is that Linear layer
applied to every input patch, its positions the output's pixels. The affine
parameters of a LayerNorm, a GroupNorm and a BatchNorm that normalises with its
running statistics are elementwise: ``∇_γ ℓ_i = Σ_t δ_{i,t} ⊙ x̂_{i,t}``
and ``∇_β ℓ_i = Σ_t δ_{i,t}``. An Embedding's row v collects the δ of every
position holding token v: ``||∇_E ℓ_i||² = Σ_{t,s: v_t = v_s} δ_{i,t}·δ_{i,s}``.

So one forward pass (activations a and normalised inputs x̂ kept by hooks) and one
backward pass of Σ_i ℓ_i (the δ of every example at once) give every example's
squared gradient norm and the summed gradient: what the gradient noise scale needs,
at the cost of one training step instead of B per-example backward passes, and
without B copies of the parameters. It holds when every parameter belongs to one
of those modules, each module runs once per forward pass, and the examples do not
interact (``eval()`` mode); otherwise :func:`squared_norms_and_sum` says it cannot
(None) and the caller forms the per-example gradients.

Example:
    >>> import torch
    >>> from landscape_probe.losses import loss_function
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    >>> norms, total = squared_norms_and_sum(model, loss_function("cross_entropy"), x, y)
    >>> norms.shape, sorted(total)
    (torch.Size([4]), ['bias', 'weight'])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.losses import LossFn
from landscape_probe.params import Params, has_tied_parameters

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d,
             nn.Embedding)
"""The modules whose parameters' per-example gradient norms are computed from activations and δ."""


def squared_norms_and_sum(model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor
                          ) -> tuple[Tensor, Params] | None:
    """``(||∇ℓ_i||² for each example i, in float64; Σ_i ∇ℓ_i per parameter)``, or None where the method does not hold.

    ``ℓ_i = loss_fn(model(x_i), y_i)`` on the example alone, as ``torch.func.vmap`` over single
    examples defines it. The model is run as it is (call this in ``eval()`` mode).
    """
    owners = _owners(model)
    if owners is None or has_tied_parameters(model) or not all(p.requires_grad for p in model.parameters()):
        return None
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and (m.training or m.running_var is None) for m in owners):
        return None  # batch statistics couple the examples
    seen: dict[nn.Module, list[Any]] = {module: [] for module in owners}

    def keep(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        record = [args[0].detach(), None]
        seen[module].append(record)
        if isinstance(output, Tensor) and output.requires_grad:
            output.register_hook(lambda delta: record.__setitem__(1, delta.detach()))

    handles = [module.register_forward_hook(keep) for module in owners]
    try:
        parameters = dict(model.named_parameters())
        with torch.enable_grad():
            outputs = model(inputs)
            if not isinstance(outputs, Tensor) or any(len(calls) > 1 for calls in seen.values()):
                return None
            losses = torch.func.vmap(lambda o, y: loss_fn(o.unsqueeze(0), y.unsqueeze(0)))(outputs, targets)
            sums = torch.autograd.grad(losses.sum(), list(parameters.values()), allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    total = {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(parameters.items(), sums)}
    norms = torch.zeros(len(inputs), dtype=torch.float64, device=inputs.device)
    for module, calls in seen.items():
        for activation, delta in calls:
            if delta is not None:
                norms += _module_norms(module, activation, delta)
    return norms, total


def _owners(model: nn.Module) -> list[nn.Module] | None:
    """The modules holding parameters, if all are :data:`SUPPORTED` (else None)."""
    owners = []
    for module in model.modules():
        if next(module.parameters(recurse=False), None) is None:
            continue
        if type(module) not in SUPPORTED or getattr(module, "groups", 1) != 1:  # a grouped convolution: not yet
            return None
        owners.append(module)
    return owners


def _module_norms(module: nn.Module, a: Tensor, delta: Tensor) -> Tensor:
    """Σ over the module's parameters of ||∇ℓ_i||², per example, in float64."""
    batch = len(delta)
    if isinstance(module, nn.Embedding):
        tokens = a.reshape(batch, -1)
        d = delta.reshape(batch, tokens.shape[1], -1).double()
        same = tokens.unsqueeze(2) == tokens.unsqueeze(1)
        return (d @ d.transpose(1, 2) * same).sum(dim=(1, 2))
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        if isinstance(module, nn.Linear):
            a, d = a.reshape(batch, -1, a.shape[-1]).double(), delta.reshape(batch, -1, delta.shape[-1]).double()
        else:  # a convolution is a Linear layer applied to every patch: positions are the output's pixels
            a, d = _patches(module, a).double(), delta.reshape(batch, delta.shape[1], -1).transpose(1, 2).double()
        norms = _outer_product_norms(a, d)
        return norms + d.sum(1).pow(2).sum(1) if module.bias is not None else norms
    # normalisations: elementwise γ ⊙ x̂ + β, over the last dims (LayerNorm) or the channels, dim 1 (the others)
    x_hat = _normalised(module, a).double()
    d = delta.double()
    if isinstance(module, nn.LayerNorm):
        dims = d.ndim - len(module.normalized_shape)
        d, x_hat = d.reshape(batch, -1, *d.shape[dims:]), x_hat.reshape(batch, -1, *d.shape[dims:])
        reduce = (1,)
    else:
        reduce = tuple(range(2, d.ndim))
    norms = torch.zeros(batch, dtype=torch.float64, device=d.device)
    for present, per_position in ((module.weight is not None, d * x_hat), (module.bias is not None, d)):
        if present:  # sum(()) would sum every dimension: a BatchNorm1d on (B, C) has no positions to sum
            per_example = per_position.sum(reduce) if reduce else per_position
            norms += per_example.reshape(batch, -1).pow(2).sum(1)
    return norms


def _outer_product_norms(a: Tensor, d: Tensor) -> Tensor:
    """||Σ_t d_t a_tᵀ||² per example, by Gram matrices (T² work) or the gradients themselves, whichever is less."""
    positions = a.shape[1]
    if positions == 1:
        return a.pow(2).sum((1, 2)) * d.pow(2).sum((1, 2))
    if positions * positions <= a.shape[2] * d.shape[2]:
        return (a @ a.transpose(1, 2) * (d @ d.transpose(1, 2))).sum(dim=(1, 2))
    return torch.einsum("bto,bti->boi", d, a).pow(2).sum(dim=(1, 2))


def _patches(module: nn.Conv1d | nn.Conv2d, x: Tensor) -> Tensor:
    """The input patches each output pixel sees, (B, pixels, channels · kernel size), as ``F.unfold`` lays them out.

    The convolution's own padding (any mode) is applied first, so the patches are taken with none.
    """
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = torch.nn.functional.pad(x, module._reversed_padding_repeated_twice, mode=mode)
    if isinstance(module, nn.Conv1d):  # a 1 × L image
        x, kernel, dilation, stride = x.unsqueeze(2), (1, *module.kernel_size), (1, *module.dilation), (1, *module.stride)
    else:
        kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    return torch.nn.functional.unfold(x, kernel, dilation=dilation, stride=stride).transpose(1, 2)


def _normalised(module: nn.Module, x: Tensor) -> Tensor:
    """x̂, the input as the normalisation layer normalises it (BatchNorm: with its running statistics)."""
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
        grouped = x.reshape(len(x), module.num_groups, -1) if isinstance(module, nn.GroupNorm) else x
        dims = (2,) if isinstance(module, nn.GroupNorm) else tuple(range(x.ndim - len(module.normalized_shape), x.ndim))
        mean, variance = grouped.mean(dims, keepdim=True), grouped.var(dims, correction=0, keepdim=True)
        return ((grouped - mean) / torch.sqrt(variance + module.eps)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - module.running_mean.reshape(shape)) / torch.sqrt(module.running_var.reshape(shape) + module.eps)
