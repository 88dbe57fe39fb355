"""Muon for the weight matrices, AdamW for everything else, as one optimiser.

Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural
networks"; torch.optim.Muon) steps a weight matrix W with gradient g,
momentum μ, learning rate η and decoupled weight decay λ as

    B ← μ · B + (1 − μ) · g                  (torch keeps an average, not a sum)
    M = (1 − μ) · g + μ · B                  (Nesterov)
    O = NS₅(M)                               (≈ U Vᵀ, where M = U S Vᵀ)
    W ← (1 − η·λ) · W − s · η · O

NS₅ is five steps of a quintic Newton–Schulz iteration, run in bfloat16 on
M / ||M||_F. Its coefficients are chosen for speed, not convergence, so O is
U S' Vᵀ with the singular values S' spread over roughly (0.5, 1.5) rather than
all equal to 1 (torch.optim.Muon's documentation). The scale s is
``adjust_lr_fn``'s: "match_rms_adamw" (the default here, Liu et al. 2025,
"Muon is Scalable for LLM Training") uses s = 0.2·sqrt(max(rows, cols)), which
gives the update the RMS of an AdamW step, so one learning rate and weight
decay serve both halves; "original" (Keller Jordan's, torch's default) uses
s = sqrt(max(1, rows/cols)).

Muon is defined for matrices only, so, as its authors recommend, every other
parameter (biases, norm gains, convolution kernels) is stepped by AdamW with
the same η and λ. This class holds one optimiser of each kind over disjoint
parameters and steps both; its ``param_groups`` are theirs (so learning-rate
schedulers reach both) and its ``state_dict()`` holds both states.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> optimizer = MuonWithAdamW(model.parameters(), lr=0.01)
    >>> [group["algorithm"] for group in optimizer.param_groups]
    ['muon', 'adamw']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from landscape_probe.optim.per_tensor import evaluate_closure


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon on 2-D parameters and torch.optim.AdamW on the rest (see the module docstring).

    Args:
        params: the model's parameters (a flat iterable of tensors).
        lr: η, shared by both halves.
        momentum: μ, Muon's momentum (Nesterov).
        weight_decay: λ, decoupled, shared by both halves.
        betas: AdamW's (β1, β2).
        eps: AdamW's ε.
        adjust_lr_fn: Muon's update scale: "match_rms_adamw" or "original".
        ns_steps: Newton–Schulz iterations.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        adjust_lr_fn: str = "match_rms_adamw",
        ns_steps: int = 5,
    ) -> None:
        params = list(params)
        if any(isinstance(p, dict) for p in params):
            raise ValueError("MuonWithAdamW takes a flat list of parameters; it makes its own groups")
        matrices = [p for p in params if p.ndim == 2]
        others = [p for p in params if p.ndim != 2]
        groups = [{"params": ps, "algorithm": kind} for kind, ps in (("muon", matrices), ("adamw", others)) if ps]
        super().__init__(groups, {"lr": lr, "weight_decay": weight_decay})
        muon_groups = [g for g in self.param_groups if g["algorithm"] == "muon"]
        adamw_groups = [g for g in self.param_groups if g["algorithm"] == "adamw"]
        # The inner optimisers share these group dicts, so a scheduler that sets
        # param_groups[i]["lr"] here sets it for the optimiser that uses it.
        self.muon = (
            torch.optim.Muon(muon_groups, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay,
                             ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
            if muon_groups else None
        )
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay) \
            if adamw_groups else None

    def _inner(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.muon, self.adamw) if o is not None]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One Muon step on the matrices and one AdamW step on the rest; returns the closure's loss."""
        loss = evaluate_closure(closure)
        for optimizer in self._inner():
            optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """``{"muon": ..., "adamw": ...}``: each inner optimiser's own state dict (absent halves left out)."""
        return {name: o.state_dict() for name, o in (("muon", self.muon), ("adamw", self.adamw)) if o is not None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what :meth:`state_dict` returned, for an optimiser built over the same parameters."""
        for name, optimizer in (("muon", self.muon), ("adamw", self.adamw)):
            if optimizer is not None:
                optimizer.load_state_dict(state_dict[name])
        # Loading gives the inner optimisers fresh group dicts; share them again.
        self.param_groups = [g for o in self._inner() for g in o.param_groups]
