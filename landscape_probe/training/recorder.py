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

The per-step numbers are computed on the device and kept there; :meth:`Recorder.flush`
copies them to the records in one transfer (every :data:`FLUSH_EVERY` steps, at a
diagnostic step, and whenever the caller needs the records), so a step costs no
host–device synchronisation for them. A flush also notes the first step whose loss
it finds not finite (:attr:`Recorder.diverged_at`), and :meth:`Recorder.end_at` cuts the records back
to the steps before the one where a run diverged.

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
    >>> recorder.flush()  # the per-step numbers wait on the device until a flush
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
from landscape_probe.training.records import PER_STEP, empty_records


FLUSH_EVERY = 64
"""Steps kept on the device between copies of the per-step records to the host."""


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
        self._steps: list[Tensor] = []  # one row per step kept on the device: loss, ||g||, then ||W_l|| per layer
        self._updates: list[Tensor] = []  # one row per update: its relative size per layer
        self._parameters = list(model.parameters())
        self.diverged_at: int | None = None
        """The first step whose loss a flush found NaN or infinite (None: none so far)."""

    def snapshot(self) -> Params:
        """A copy of the layers as they are now (W_s, before the update)."""
        return P.clone(self.layers)

    def record_step(self, loss: Tensor | float, learning_rate: float, before: Params) -> None:
        """Step s's loss, η_s, the norm of the gradient now in ``.grad``, and ||W_{s,l}|| from ``before``.

        The numbers stay on the device (no host synchronisation) until :meth:`flush`; η_s is a host number.
        """
        weight_norms = self._norms(list(before.values()))
        gradients = [p.grad for p in self._parameters if p.grad is not None]
        # one norm per tensor in one call (torch._foreach_*, as torch.optim uses it), then their norm in float64
        norms = [norm.to(weight_norms.device) for norm in torch._foreach_norm(gradients)]  # no-op on one device
        gradient_norm = torch.linalg.vector_norm(torch.stack(norms).double()) if norms else weight_norms.new_zeros(())
        loss = torch.as_tensor(loss).detach().to(device=weight_norms.device, dtype=torch.float64)
        self._steps.append(torch.cat([loss.reshape(1), gradient_norm.reshape(1), weight_norms]))
        self.records["learning_rate"].append(float(learning_rate))

    def record_update(self, before: Params, *, diagnosed: bool) -> None:
        """||W_{s+1,l} − W_{s,l}|| / ||W_{s,l}|| (and, at a diagnostic step, the spectral shift), kept until a flush."""
        earlier = [before[n] for n in self.layers]
        steps = torch._foreach_sub(list(self.layers.values()), earlier)
        self._updates.append(self._norms(steps) / self._norms(earlier))
        if diagnosed:
            self.flush()
            finite = self.diverged_at is None  # else the weights may hold NaN, which has no singular values
            nan = [math.nan] * len(self.layers)
            self.records["spectral_shift"].append(
                [diagnostics.spectral_shift(w, self.layers[n]) for n, w in before.items()] if finite else nan)
            self.records["relative_update_spectral"].append(
                [diagnostics.relative_spectral_update(w, self.layers[n]) for n, w in before.items()] if finite else nan)
        elif len(self._updates) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Copy the steps' numbers kept on the device into the records, in one transfer each."""
        if self._steps:
            count, first = len(self.layers), len(self.records["loss"])
            rows = torch.stack(self._steps).cpu().tolist()
            for row in rows:
                self.records["loss"].append(row[0])
                self.records["gradient_norm"].append(row[1])
                self.records["weight_norm"].append(row[2 : 2 + count])
            if self.diverged_at is None:
                self.diverged_at = next((first + i for i, row in enumerate(rows) if not math.isfinite(row[0])), None)
        if self._updates:
            self.records["relative_update"].extend(torch.stack(self._updates).cpu().tolist())
        self._steps, self._updates = [], []

    def end_at(self, step: int) -> None:
        """Keep the records of the steps before ``step`` only: the run diverged there (its loss was not finite).

        Steps recorded after it (its loss found late, in a block copied from the device) are dropped.
        Diagnostics taken at ``step`` itself, before its forward pass, stay, with NaN for ``spectral_shift``
        and ``relative_update_spectral``: the update they describe never counted. (None are taken after it:
        the loop flushes before each diagnostic step.)
        """
        self.flush()
        for name in PER_STEP:
            del self.records[name][step:]
        for name in ("spectral_shift", "relative_update_spectral"):
            if len(self.records[name]) < len(self.records["diagnostic_steps"]):
                self.records[name].append([math.nan] * len(self.layers))

    def _norms(self, layers: list[Tensor]) -> Tensor:
        """||·||_F of each layer, in float64, as one tensor on the model's device (empty without layers)."""
        if not layers:
            return torch.zeros(0, dtype=torch.float64, device=next(self.model.parameters()).device)
        return torch.stack(torch._foreach_norm(layers)).double()

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
