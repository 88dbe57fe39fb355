"""What `probe train` records at each step, written once for the training loop and for :class:`TrainingProbe`.

With ``W_l`` the layers (parameters with ndim ≥ 2, DESIGN.md §2) and W_s the
weights at which step s's gradient was taken:

- every step: ``loss``, ``learning_rate`` η_s, ``gradient_norm`` ||∇loss|| over
  all parameters (read from ``.grad``), ``weight_norm`` ||W_{s,l}||_F and
  ``relative_update`` ||W_{s+1,l} − W_{s,l}||_F / ||W_{s,l}||_F;
- at diagnostic steps, at W_s on a fixed batch (:mod:`~landscape_probe.training.diagnostics`):
  ``sharpness``, ``gradient_noise_scale``, ``effective_learning_rate`` η_s / ||W_l||²
  of the layers followed by normalisation, ``intrinsic_learning_rate`` λ·η_s, and
  after the update ``spectral_shift`` and ``relative_update_spectral``
  ||W_{s+1,l} − W_{s,l}||₂ / ||W_{s,l}||₂ of each layer.

The caller decides *when*: the loop records diagnostics before its forward
pass and the step after ``optimizer.step()``; ``TrainingProbe``, called after
the user's ``optimizer.step()``, puts W_s back for the diagnostics.

Example:
    >>> import torch
    >>> from landscape_probe.losses import loss_function
    >>> model = torch.nn.Linear(2, 1, bias=False)
    >>> recorder = Recorder(model, loss_function("mse"), diagnostic_batch=None)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[3.0, 4.0]]))
    >>> model.weight.grad = torch.tensor([[0.0, 2.0]])
    >>> before = recorder.snapshot()
    >>> recorder.record_step(1.0, 0.5, before)
    >>> with torch.no_grad():
    ...     _ = model.weight.mul_(1.1)
    >>> recorder.record_update(before, diagnosed=False)
    >>> records = recorder.records
    >>> records["weight_norm"], records["gradient_norm"], round(records["relative_update"][0][0], 6)
    ([[5.0]], [2.0], 0.1)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from landscape_probe import params as P
from landscape_probe.losses import LossFn
from landscape_probe.params import Params, detached_params, select_layers
from landscape_probe.training import diagnostics
from landscape_probe.training.own_step import own_step_over_breakdown
from landscape_probe.training.records import empty_records


class Recorder:
    """Appends one run's records (the lists of :func:`~landscape_probe.training.records.empty_records`).

    Args:
        model: the network being trained; its layers are followed through views,
            so in-place optimiser steps show up without copying.
        loss_fn: ``loss(outputs, targets)``, for the diagnostics.
        diagnostic_batch: the fixed ``(x, y)`` batch of the diagnostics; None: no diagnostics.
        sharpness_iterations: power iterations for the sharpness.
        seed: seeds the power iteration's start vector.
        records: lists to append to (to continue a run); new ones by default.
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, *, diagnostic_batch: tuple[Tensor, Tensor] | None,
        sharpness_iterations: int = 20, seed: int = 0, records: dict[str, list] | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.diagnostic_batch = diagnostic_batch
        self.sharpness_iterations = sharpness_iterations
        self.seed = seed
        self.layers = detached_params(model, select_layers(model))
        self.normalised = diagnostics.normalised_layers(model)
        self.records = records if records is not None else empty_records()

    def snapshot(self) -> Params:
        """A copy of the layers as they are now (W_s, before the update)."""
        return P.clone(self.layers)

    def record_step(self, loss: float, learning_rate: float, before: Params) -> None:
        """Append step s's loss, η_s, the norm of the gradient now in ``.grad``, and ||W_{s,l}|| from ``before``."""
        gradients = [p.grad.reshape(-1) for p in self.model.parameters() if p.grad is not None]
        gradient_norm = sum(float(g.double().pow(2).sum()) for g in gradients) ** 0.5
        self.records["loss"].append(float(loss))
        self.records["learning_rate"].append(float(learning_rate))
        self.records["gradient_norm"].append(gradient_norm)
        self.records["weight_norm"].append([float(w) for w in P.layer_norms(before).values()])

    def record_update(self, before: Params, *, diagnosed: bool) -> None:
        """Append ||W_{s+1,l} − W_{s,l}|| / ||W_{s,l}|| (and, at a diagnostic step, the spectral shift)."""
        weight_norms = P.layer_norms(before)
        update_norms = P.layer_norms(P.sub(self.layers, before))
        self.records["relative_update"].append([float(update_norms[n] / weight_norms[n]) for n in self.layers])
        if diagnosed:
            self.records["spectral_shift"].append(
                [diagnostics.spectral_shift(w, self.layers[n]) for n, w in before.items()])
            self.records["relative_update_spectral"].append(
                [diagnostics.relative_spectral_update(w, self.layers[n]) for n, w in before.items()])

    def record_diagnostics(self, step: int, learning_rate: float, weight_decay: float,
                           optimizer: torch.optim.Optimizer | None = None) -> None:
        """Append the every-k-steps diagnostics at the model's current weights, labelled ``step``.

        With ``optimizer``, also where its own next step sits in its trust region (:mod:`.own_step`).
        """
        inputs, targets = self.diagnostic_batch
        named = dict(self.model.named_parameters())
        self.records["diagnostic_steps"].append(step)
        self.records["sharpness"].append(diagnostics.sharpness(
            self.model, self.loss_fn, inputs, targets, iterations=self.sharpness_iterations, seed=self.seed))
        self.records["gradient_noise_scale"].append(
            diagnostics.gradient_noise_scale(self.model, self.loss_fn, inputs, targets))
        self.records["effective_learning_rate"].append(
            [learning_rate / float(named[n].detach().norm()) ** 2 for n in self.normalised])
        self.records["intrinsic_learning_rate"].append(weight_decay * learning_rate)
        self.records["step_over_breakdown"].append(
            own_step_over_breakdown(self.model, optimizer, self.loss_fn, inputs, targets) if optimizer else math.nan)
