"""Training diagnostics: the slower quantities `probe train` records every k steps.

Each function measures the model as it stands, in ``eval()`` mode on a fixed
batch, and leaves its weights and mode unchanged:

- :func:`sharpness`: the top Hessian eigenvalue λ_max of the batch loss.
- :func:`gradient_noise_scale`: McCandlish et al.'s (2018) simple noise scale
  B_simple = tr(Σ) / ||g||² from per-example gradients.
- :func:`spectral_shift`: how far one step moves a layer's singular values,
  relative to their root mean square.
- :func:`relative_spectral_update`: one step's ‖ΔW‖₂ / ‖W‖₂ per layer, the
  relative update in the spectral norm (Muon's), beside the Frobenius one.
- :func:`normalised_layers`: the weight matrices followed by a normalisation
  layer, whose scale the network cannot see (Li, Lyu & Arora 2020).

Example:
    >>> import torch
    >>> w = torch.eye(3)
    >>> round(spectral_shift(w, 1.1 * w), 6)
    0.1
"""

from __future__ import annotations


import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from landscape_probe.curvature.hessian import top_hessian_eigenvalue
from landscape_probe.losses import LossFn
from landscape_probe.models.modes import evaluating
from landscape_probe.params import Params
from landscape_probe.training.per_example_norms import squared_norms_and_sum

NORMALISATIONS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def _split_state(model: nn.Module) -> tuple[Params, Params]:
    parameters = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return parameters, buffers


def sharpness(
    model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor, *, iterations: int = 20, seed: int = 0
) -> float:
    """The top Hessian eigenvalue of the batch loss over all parameters, by Lanczos iteration.

    λ_max = max eigenvalue (largest in magnitude, sign kept) of ∇²_W loss(W; batch),
    from :func:`landscape_probe.curvature.hessian.top_hessian_eigenvalue`. Gradient descent
    on a quadratic is stable only while η < 2/λ_max, so sharpness is the curvature
    that bounds the Euclidean-trust step size.
    """
    with evaluating(model):
        parameters, buffers = _split_state(model)

        def batch_loss(p: Params) -> Tensor:
            return loss_fn(functional_call(model, {**buffers, **p}, (inputs,)), targets)

        value, _ = top_hessian_eigenvalue(batch_loss, parameters, iterations=iterations, seed=seed)
    return value


def per_example_gradients(model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor) -> Params:
    """The loss gradient of every example separately: tensors of shape ``(batch, *parameter.shape)``.

    ``g_i = ∇_W loss(f(x_i; W), y_i)``, vectorised with ``torch.func.vmap`` over
    ``torch.func.grad``, in ``eval()`` mode (normalisation uses running statistics,
    so each example's gradient does not depend on the others).
    """
    with evaluating(model):
        parameters, buffers = _split_state(model)

        def example_loss(p: Params, x: Tensor, y: Tensor) -> Tensor:
            outputs = functional_call(model, {**buffers, **p}, (x.unsqueeze(0),))
            return loss_fn(outputs, y.unsqueeze(0))

        return vmap(grad(example_loss), in_dims=(None, 0, 0))(parameters, inputs, targets)


def gradient_noise_scale(model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor) -> float:
    """The simple gradient noise scale B_simple = tr(Σ) / ||g||² (McCandlish et al., 2018).

    With per-example gradients g_1 … g_B (all parameters, flattened) and their mean
    ḡ, the per-example covariance is estimated without bias,
    ``tr(Σ) ≈ 1/(B−1) Σ_i ||g_i − ḡ||²``, and ``||g||²`` by ``||ḡ||²``. (The latter
    overestimates ``||E g||²`` by ``tr(Σ)/B``, so B_simple is biased low for batches
    much smaller than B_simple itself.) B_simple is the batch size at which the
    gradient noise and signal are equal: the critical batch size, in examples.

    Where every parameter sits in a Linear, normalisation or Embedding layer,
    ``Σ_i ||g_i||²`` and ḡ come from one backward pass
    (:mod:`~landscape_probe.training.per_example_norms`) and
    ``Σ_i ||g_i − ḡ||² = Σ_i ||g_i||² − B ||ḡ||²``, in float64 (rounding: about
    ``ε · Σ_i ||g_i||²``, ε of the model's dtype); otherwise the per-example
    gradients are formed with ``vmap``.

    Raises:
        ValueError: for a batch of fewer than two examples.
    """
    if len(inputs) < 2:
        raise ValueError("the gradient noise scale needs at least two examples")
    with evaluating(model):
        fast = squared_norms_and_sum(model, loss_fn, inputs, targets)
    if fast is not None:
        # Σ_i ||g_i − ḡ||² = Σ_i ||g_i||² − B ||ḡ||², clipped at 0 against rounding
        norms, total = fast
        count = len(inputs)
        squared_mean = sum(g.double().pow(2).sum() for g in total.values()) / count**2
        trace_covariance = (norms.sum() - count * squared_mean).clamp(min=0) / (count - 1)
        return float(trace_covariance / squared_mean)
    gradients = per_example_gradients(model, loss_fn, inputs, targets).values()
    # per parameter, with no concatenated copy: the coordinates' unbiased variances sum to tr(Σ)
    trace_covariance = sum(g.var(dim=0, correction=1).sum(dtype=torch.float64) for g in gradients)
    squared_mean = sum(g.mean(dim=0).pow(2).sum(dtype=torch.float64) for g in gradients)
    return float(trace_covariance / squared_mean)


def spectral_shift(before: Tensor, after: Tensor) -> float:
    """``max_i |σ_i(W + ΔW) − σ_i(W)| / rms_i σ_i(W)`` for one layer.

    ``before`` is W and ``after`` is W + ΔW; tensors with more than two dimensions
    (conv kernels) are read as ``(out, rest)`` matrices. The root mean square of
    the singular values is ``||W||_F / sqrt(min(m, n))``. By Mirsky's inequality
    ``max_i |σ_i(W+ΔW) − σ_i(W)| ≤ ||ΔW||_*`` (spectral norm) ``≤ ||ΔW||_F``, so a
    step with ``||ΔW||_F ≤ η ||W||_F`` shifts it by at most ``η · sqrt(min(m, n))``.
    """
    w = before.detach().reshape(before.shape[0], -1)
    w_new = after.detach().reshape(after.shape[0], -1)
    sigma = torch.linalg.svdvals(w)
    sigma_new = torch.linalg.svdvals(w_new)
    rms = sigma.pow(2).mean().sqrt()
    return float((sigma_new - sigma).abs().max() / rms)


def relative_spectral_update(before: Tensor, after: Tensor) -> float:
    """``‖ΔW‖₂ / ‖W‖₂`` for one layer, ΔW = after − before: the relative update in spectral norm.

    ‖·‖₂ is the largest singular value (exact, by SVD, in float64); tensors with more
    than two dimensions (conv kernels) are read as ``(out, rest)`` matrices. Beside the
    Frobenius ``relative_update`` it shows the shape of a step: a rank-one step (SGD on
    one example) has ‖ΔW‖₂ = ‖ΔW‖_F, while Muon's orthogonalised step, whose singular
    values are all about equal, has ‖ΔW‖₂ ≈ ‖ΔW‖_F / sqrt(min(m, n)) — its spectral
    relative update is the quantity it controls (Bernstein & Newhouse 2024, modula).
    """
    w = before.detach().reshape(before.shape[0], -1).to(torch.float64)
    delta = after.detach().reshape(after.shape[0], -1).to(torch.float64) - w
    return float(torch.linalg.matrix_norm(delta, ord=2) / torch.linalg.matrix_norm(w, ord=2))


def normalised_layers(model: nn.Module) -> list[str]:
    """Names of the weight matrices whose output passes straight into a normalisation layer.

    For such a layer the network's function does not change when W is scaled,
    so what matters is its direction: a gradient step η moves the direction by
    the *effective* learning rate η / ||W||², and with weight decay λ the norm
    settles where the *intrinsic* learning rate λη governs the dynamics
    (Li, Lyu & Arora, 2020). Recognised: the zoo MLP (``hidden.i`` followed by a
    non-identity ``norms.i``), and in general a Linear or Conv layer registered
    immediately before a BatchNorm / LayerNorm / GroupNorm module.
    """
    names: list[str] = []
    hidden, norms = getattr(model, "hidden", None), getattr(model, "norms", None)
    if isinstance(hidden, nn.ModuleList) and isinstance(norms, nn.ModuleList):
        for i, (linear, norm) in enumerate(zip(hidden, norms)):
            if isinstance(norm, NORMALISATIONS):
                names.append(f"hidden.{i}.weight")
        return names
    modules = list(model.named_modules())
    for (name, module), (_, following) in zip(modules, modules[1:]):
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) and isinstance(following, NORMALISATIONS):
            names.append(f"{name}.weight")
    return names
