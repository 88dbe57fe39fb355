"""K-FAC: Kronecker-factored approximate curvature (Martens & Grosse, 2015).

For a Linear or Conv2d layer with weight gradient ∇W (output × fan-in; the bias
gradient appended as a last column when the layer has a bias), K-FAC
approximates the Fisher block of the layer by A ⊗ G, where

    A = (1/B) Σ_{i, t} a_{it} a_{it}ᵀ       a: the layer input (a conv's unfolded patch),
                                            with a 1 appended when the layer has a bias
    G = (1/(B·T)) Σ_{i, t} δ_{it} δ_{it}ᵀ   δ = B · ∂loss/∂(layer output), the per-example
                                            back-propagated gradient of a mean loss

over the B examples of the batch (the first dimension) and the T positions of
each (conv locations or sequence positions; T = 1 for a plain Linear), as in
KFC (Grosse & Martens, 2016). δ comes from the loss actually minimised (the
"empirical Fisher" variant, rather than targets sampled from the model). Both
factors are running averages, A ← decay · A + (1 − decay) · A_batch (the first
batch sets them). Factored Tikhonov damping (Martens & Grosse §6.3) with
damping λ and π = sqrt((tr A / dim A) / (tr G / dim G)) gives

    Ā = A + π·sqrt(λ)·I,   Ḡ = G + sqrt(λ)/π·I,

whose inverses are recomputed every ``inverse_every`` steps. The preconditioned
gradient is P = Ḡ⁻¹ · M · Ā⁻¹ for M = [∇W ∇b] + weight_decay · [W b], i.e.
vec(P) = (Ā ⊗ Ḡ)⁻¹ vec(M) with column-stacking vec.

With ``damping_mode="eigen"`` the damping is added to the eigenvalues of the
Kronecker product instead: the exact inverse of A ⊗ G + λI, computed through
the eigendecompositions of the two factors (the rule of the widely used
PyTorch K-FAC, github.com/alecwangcq/KFAC-Pytorch, ``optimizers/kfac.py``).
With A = Q_A diag(a) Q_Aᵀ and G = Q_G diag(g) Q_Gᵀ (eigenvalues below 1e-10
set to 0, recomputed every ``inverse_every`` steps),

    P = Q_G [(Q_Gᵀ M Q_A) ⊘ (g aᵀ + λ)] Q_Aᵀ,   i.e. vec(P) = (A ⊗ G + λ I)⁻¹ vec(M),

where ⊘ divides entry by entry.

With ``kl_clip`` = κ (that reference's trust region on the KL divergence of
the step), every preconditioned direction is scaled by

    ν = min(1, sqrt(κ / (lr² · Σ_layers ⟨P, M⟩)))

before momentum; κ = None (the default) leaves P as it is. The update is SGD
with momentum:

    u ← momentum · u + ν · P;   [W b] ← [W b] − lr · u.

Defaults and why: factored damping and no KL clip, the rule of Martens &
Grosse's paper, which keeps each inverse a Kronecker product of two small
Cholesky-inverted matrices and is what every run of this tool so far used.
Deliberate differences from the alecwangcq reference besides the options:
the factors start from the first batch (there, from identity matrices and
updated every ``TCov`` steps), weight decay is added before preconditioning
(there, after it, and only from step 20·TCov on), the KL sum uses the
gradient that was preconditioned (M, weight decay included; there the raw
gradient), and λ applies as given (there ``damping`` 1e-3 by default).

Every other
parameter (norm scales, embeddings, layers whose activations were not seen
since the last step, grouped or string-padded convolutions) takes the same
momentum-SGD update with its plain gradient.

Hooks on the layers record the inputs and output gradients of the last forward
and backward pass with gradients enabled; ``step()`` uses them, so run no other
backward pass through the model between ``loss.backward()`` and ``step()``.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> optimizer = KFAC(model, lr=0.1)
    >>> model(torch.randn(4, 3)).pow(2).mean().backward()
    >>> optimizer.step()
    >>> optimizer.kronecker_factors(model[0]).activation.shape
    torch.Size([4, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from landscape_probe.optim.per_tensor import evaluate_closure, group_of, heavy_ball


@dataclass(frozen=True)
class KroneckerFactors:
    """The factors of one layer: running A and G, and the factored-damping Ā and Ḡ
    (which precondition only when ``damping_mode`` is "factored")."""

    activation: Tensor
    gradient: Tensor
    damped_activation: Tensor
    damped_gradient: Tensor


def supports(module: nn.Module) -> bool:
    """Whether K-FAC preconditions ``module``: any Linear, or a Conv2d with groups=1 and numeric padding."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and not isinstance(module.padding, str)
        and module.padding_mode == "zeros"
    )


def _input_rows(module: nn.Module, x: Tensor) -> Tensor:
    """The layer inputs as rows (examples × positions, fan-in), with a column of ones for the bias."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    else:
        rows = x.reshape(-1, x.shape[-1])
    if module.bias is not None:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
    return rows


def _output_rows(module: nn.Module, grad: Tensor) -> Tensor:
    if isinstance(module, nn.Conv2d):
        return grad.flatten(2).transpose(1, 2).reshape(-1, grad.shape[1])
    return grad.reshape(-1, grad.shape[-1])


class KFAC(torch.optim.Optimizer):
    """K-FAC with momentum (formulas in the module docstring).

    Args:
        model: the network; hooks go on its supported Linear/Conv2d modules.
        lr: learning rate.
        momentum: momentum on the preconditioned gradient.
        weight_decay: L2 weight decay, added to the gradient.
        damping: λ, the Tikhonov damping.
        decay: the running-average constant of A and G.
        inverse_every: recompute Ā⁻¹ and Ḡ⁻¹ (or the eigendecompositions) every this many steps.
        damping_mode: "factored" (Ā ⊗ Ḡ, the default) or "eigen" (A ⊗ G + λI).
        kl_clip: κ, the bound on lr² · Σ⟨P, M⟩ that scales the step down; None for no clip.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        damping: float = 1e-2,
        decay: float = 0.95,
        inverse_every: int = 10,
        damping_mode: Literal["factored", "eigen"] = "factored",
        kl_clip: float | None = None,
    ) -> None:
        if lr <= 0.0 or not 0.0 <= momentum < 1.0 or weight_decay < 0.0 or damping <= 0.0:
            raise ValueError("KFAC needs lr > 0, momentum in [0, 1), weight_decay ≥ 0 and damping > 0")
        if not 0.0 <= decay < 1.0 or inverse_every < 1:
            raise ValueError("KFAC needs decay in [0, 1) and inverse_every ≥ 1")
        if damping_mode not in ("factored", "eigen"):
            raise ValueError(f'KFAC damping_mode is "factored" or "eigen", not {damping_mode!r}')
        if kl_clip is not None and kl_clip <= 0.0:
            raise ValueError(f"KFAC needs kl_clip > 0 or None, not {kl_clip}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "damping": damping}
        super().__init__(model.parameters(), defaults)
        self.decay = decay
        self.inverse_every = inverse_every
        self.damping_mode = damping_mode
        self.kl_clip = kl_clip
        self.layers = [m for m in model.modules() if supports(m)]
        self._captured: dict[nn.Module, dict[str, Any]] = {}
        self._handles: list[RemovableHandle] = [m.register_forward_hook(self._record) for m in self.layers]

    def remove_hooks(self) -> None:
        """Detach the optimiser from the model (it then acts as momentum SGD)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _record(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if not (torch.is_grad_enabled() and output.requires_grad):
            return
        if torch._C._functorch.is_functorch_wrapped_tensor(output):
            return  # torch.func transforms (per-example gradients, HVPs) must not feed the factors
        captured = {"input": inputs[0].detach(), "batch": inputs[0].shape[0]}
        self._captured[module] = captured

        def keep_gradient(grad: Tensor) -> None:
            captured["output_grad"] = grad.detach()

        output.register_hook(keep_gradient)

    def kronecker_factors(self, module: nn.Module) -> KroneckerFactors:
        """The running factors A, G of ``module`` and their damped versions Ā, Ḡ."""
        state = self.state[module.weight]
        damping = group_of(self, module.weight)["damping"]
        return KroneckerFactors(state["A"], state["G"], *_damped(state["A"], state["G"], damping))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Precondition every layer with captured statistics, then take a momentum-SGD step."""
        loss = evaluate_closure(closure)
        directions: dict[Tensor, Tensor] = {}
        kl_terms = []  # lr² · ⟨P, M⟩ of each layer with a clip, summed on the device and read once a step
        for module in self.layers:
            captured = self._captured.get(module, {})
            if module.weight.grad is not None and "output_grad" in captured:
                preconditioned, alignment = self._precondition(module, captured)
                directions.update(preconditioned)
                if alignment is not None:
                    device = kl_terms[0].device if kl_terms else alignment.device
                    kl_terms.append(alignment.to(device, torch.float64) * group_of(self, module.weight)["lr"] ** 2)
        self._captured.clear()
        kl_sum = float(sum(kl_terms))
        if kl_sum > 0.0:  # math.sqrt, not torch.sqrt, which differs from it in the last bit now and then
            scale = min(1.0, math.sqrt(self.kl_clip / kl_sum))
            directions = {p: scale * d for p, d in directions.items()}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                direction = directions.get(p)
                if direction is None:
                    direction = p.grad + group["weight_decay"] * p
                if group["momentum"] > 0.0:  # only then does a parameter get state, as in torch's SGD
                    direction = heavy_ball(self.state[p], direction, group["momentum"])
                p.sub_(group["lr"] * direction)
        return loss

    def _precondition(self, module: nn.Module, captured: dict[str, Any]) -> tuple[dict[Tensor, Tensor], Tensor | None]:
        """The preconditioned direction P of the layer's parameters, and ⟨P, M⟩ for the KL clip (None without one)."""
        group = group_of(self, module.weight)
        batch = captured["batch"]
        a = _input_rows(module, captured["input"]).to(module.weight.dtype)
        delta = batch * _output_rows(module, captured["output_grad"]).to(module.weight.dtype)
        batch_a = a.T @ a / batch
        batch_g = delta.T @ delta / delta.shape[0]
        state = self.state[module.weight]
        if "A" not in state:
            state["A"], state["G"], state["factor_steps"] = batch_a, batch_g, 0
        else:
            state["A"].mul_(self.decay).add_((1.0 - self.decay) * batch_a)
            state["G"].mul_(self.decay).add_((1.0 - self.decay) * batch_g)
        recompute = state["factor_steps"] % self.inverse_every == 0
        if recompute and self.damping_mode == "eigen":
            state["A_values"], state["A_vectors"] = _eigen(state["A"])
            state["G_values"], state["G_vectors"] = _eigen(state["G"])
        elif recompute:
            damped_a, damped_g = _damped(state["A"], state["G"], group["damping"])
            state["A_inv"], state["G_inv"] = _inverse(damped_a), _inverse(damped_g)
        state["factor_steps"] += 1
        params = [module.weight] + ([module.bias] if module.bias is not None else [])
        grad = torch.cat([p.grad.reshape(p.shape[0], -1) for p in params], dim=1)
        weights = torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)
        decayed = grad + group["weight_decay"] * weights
        if self.damping_mode == "eigen":
            vectors_a, vectors_g = state["A_vectors"], state["G_vectors"]
            eigenvalues = torch.outer(state["G_values"], state["A_values"]) + group["damping"]
            preconditioned = vectors_g @ ((vectors_g.T @ decayed @ vectors_a) / eigenvalues) @ vectors_a.T
        else:
            preconditioned = state["G_inv"] @ decayed @ state["A_inv"]
        fan_in = module.weight[0].numel()
        out = {module.weight: preconditioned[:, :fan_in].reshape(module.weight.shape)}
        if module.bias is not None:
            out[module.bias] = preconditioned[:, fan_in]
        return out, (preconditioned * decayed).sum() if self.kl_clip is not None else None


def _damped(activation: Tensor, gradient: Tensor, damping: float) -> tuple[Tensor, Tensor]:
    """Ā = A + π·sqrt(λ)·I and Ḡ = G + sqrt(λ)/π·I, with π = 1 when a trace is zero."""
    mean_a = torch.trace(activation) / activation.shape[0]
    mean_g = torch.trace(gradient) / gradient.shape[0]
    pi = torch.sqrt(mean_a / mean_g) if mean_a > 0 and mean_g > 0 else torch.ones((), dtype=activation.dtype)
    root = math.sqrt(damping)
    eye_a = torch.eye(activation.shape[0], dtype=activation.dtype, device=activation.device)
    eye_g = torch.eye(gradient.shape[0], dtype=gradient.dtype, device=gradient.device)
    return activation + pi * root * eye_a, gradient + root / pi * eye_g


def _eigen(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (those below 1e-10 set to 0, as in the reference) and eigenvectors of a factor."""
    if not torch.isfinite(matrix).all():
        return torch.full_like(matrix[0], math.nan), torch.full_like(matrix, math.nan)
    values, vectors = torch.linalg.eigh(matrix)
    return torch.where(values > 1e-10, values, 0.0), vectors


def _inverse(matrix: Tensor) -> Tensor:
    """Inverse of a damped factor: by Cholesky; by eigenvalues clamped at their largest × 1e-7
    when rounding has made it indefinite; all NaN when it is not finite (the run has diverged)."""
    if not torch.isfinite(matrix).all():
        return torch.full_like(matrix, math.nan)
    cholesky, info = torch.linalg.cholesky_ex(matrix)
    if info == 0:
        return torch.cholesky_inverse(cholesky)
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    floor = eigenvalues.abs().max().clamp_min(torch.finfo(matrix.dtype).tiny) * 1e-7
    return (eigenvectors / eigenvalues.clamp_min(floor)) @ eigenvectors.T
