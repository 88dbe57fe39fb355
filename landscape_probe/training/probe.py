"""``lp.TrainingProbe``: the `probe train` records for a training loop you wrote yourself.

Call :meth:`TrainingProbe.step` once after each ``optimizer.step()`` (before
``zero_grad()``, so the step's gradient is still in ``.grad``, and before a
scheduler's ``step()``, so the learning rate is the one just used). The probe
keeps a copy of the weights W_s from the previous call, so that at step s it
records, with the same code as ``probe train``
(:class:`~landscape_probe.training.recorder.Recorder`):

- ``loss``, ``learning_rate`` η_s (of the optimiser's first parameter group),
  ``gradient_norm`` ||g_s|| over all parameters, ``weight_norm`` ||W_{s,l}||_F and
  ``relative_update`` ||W_{s+1,l} − W_{s,l}||_F / ||W_{s,l}||_F of each layer
  (parameters with ndim ≥ 2);
- every ``every`` steps, given a diagnostic batch ``data=(x, y)``: sharpness,
  gradient noise scale and effective / intrinsic learning rates at W_s (the
  probe puts W_s and the buffers of that time back for a moment), and the
  spectral shift of the update.

:meth:`TrainingProbe.save` writes a train results file with one run, which
``probe show`` and ``probe plot`` read like any other. Epoch records are empty
unless you add them with :meth:`TrainingProbe.epoch`.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> probe = TrainingProbe(model, optimizer, every=2, data=(x[:8], y[:8]), sharpness_iterations=3)
    >>> for _ in range(3):
    ...     optimizer.zero_grad()
    ...     loss = torch.nn.functional.cross_entropy(model(x), y)
    ...     loss.backward()
    ...     optimizer.step()
    ...     probe.step(loss)
    >>> run = probe.result().runs[0]
    >>> run.name, run.records["relative_update"].shape, run.records["diagnostic_steps"].tolist()
    ('sgd_lr0.1_depth2_seed0', (3, 2), [0, 2])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.layout import loss_units
from landscape_probe.losses import LOSSES, LossFn, loss_function
from landscape_probe.models.outputs import selecting_output
from landscape_probe.training.records import EPOCH_RECORDS
from landscape_probe.training.recorder import Recorder
from landscape_probe.training.result import TrainResult
from landscape_probe.training.store import RunResult

CUSTOM_LOSS_UNITS = "units of the loss"


class TrainingProbe:
    """Records the `probe train` diagnostics of a hand-written training loop; see the module docstring.

    Args:
        model: the network your loop trains.
        optimizer: its optimiser (any ``torch.optim.Optimizer``).
        every: take the slower diagnostics every this many steps (0: never).
        data: the fixed diagnostic batch ``(x, y)``; None: no slower diagnostics.
        loss: ``"cross_entropy"``, ``"mse"``, or your own ``loss(outputs, targets)``
            (mean over the batch), used by the diagnostics and for the units of the records.
        sharpness_iterations: power iterations for the sharpness.
        seed: seeds the power iteration; recorded as the run's seed.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the output the diagnostics
            take the loss of (a key or an index; default: ``logits``, else the first tensor). Your loop
            sees the model's outputs as they are: the selection holds only while the probe measures.
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, *, every: int = 10,
        data: tuple[Tensor, Tensor] | None = None, loss: str | LossFn = "cross_entropy",
        sharpness_iterations: int = 20, seed: int = 0, output_key: str | int | None = None,
    ) -> None:
        if every < 0:
            raise ProbeError(f"every must be at least 0, not {every}.")
        if isinstance(loss, str):
            loss_fn, self.loss_name, self.loss_units = loss_function(loss), loss, loss_units(loss)
        elif callable(loss):
            loss_fn, self.loss_name, self.loss_units = loss, "custom", CUSTOM_LOSS_UNITS
        else:
            raise ProbeError(f"loss must be one of {', '.join(LOSSES)} or a function, not a {type(loss).__name__}.")
        batch = None
        if data is not None:
            if not (isinstance(data, (tuple, list)) and len(data) == 2):
                raise ProbeError("data must be the diagnostic batch as an (x, y) pair of tensors.")
            device = next(model.parameters()).device
            batch = (torch.as_tensor(data[0]).to(device), torch.as_tensor(data[1]).to(device))
        self.model, self.optimizer, self.every, self.seed = model, optimizer, every if batch is not None else 0, seed
        self.output_key = None if output_key is None else str(output_key)
        self.recorder = Recorder(model, loss_fn, diagnostic_batch=batch, sharpness_iterations=sharpness_iterations,
                                 seed=seed)
        group = optimizer.param_groups[0]
        self.base_lr = float(group.get("initial_lr", group["lr"]))
        self.steps = 0
        self._previous = self._state()

    def step(self, loss: Tensor | float) -> None:
        """Record step s, once after ``optimizer.step()``; ``loss`` is that step's mini-batch loss."""
        group = self.optimizer.param_groups[0]
        learning_rate = float(group["lr"])
        before = {name: self._previous[name] for name in self.recorder.layers}
        self.recorder.record_step(loss.detach() if isinstance(loss, Tensor) else float(loss), learning_rate, before)
        diagnose = self.every > 0 and self.steps % self.every == 0
        if diagnose:
            with self._weights(self._previous), selecting_output(self.model, self.output_key):
                self.recorder.record_diagnostics(self.steps, learning_rate, float(group.get("weight_decay", 0.0)),
                                                 self.optimizer)
        self.recorder.record_update(before, diagnosed=diagnose)
        self._previous = self._state()
        self.steps += 1

    def epoch(self, train_loss: float, train_accuracy: float = math.nan, test_loss: float = math.nan,
              test_accuracy: float = math.nan) -> None:
        """Optionally, record the end of an epoch: whole-set losses and accuracies you measured."""
        for name, value in zip(EPOCH_RECORDS, (train_loss, train_accuracy, test_loss, test_accuracy)):
            self.recorder.records[name].append(float(value))

    def result(self) -> TrainResult:
        """What was recorded so far, as a train result with one run."""
        from landscape_probe.hdf5 import provenance

        self.recorder.flush()
        name = type(self.optimizer).__name__.lower()
        model_class = type(self.model)
        model_args = {"name": "custom", "class": f"{model_class.__module__}:{model_class.__qualname__}"}
        layers = list(self.recorder.layers)
        run = RunResult(name, self.base_lr, len(layers), self.seed, model_args, layers, self.recorder.normalised,
                        self.recorder.records, steps=self.steps, best_of_grid=True)
        config = {"optimizers": [name], "model": model_args["class"], "loss": self.loss_name,
                  "diagnostics_every": self.every, "recorded_by": "TrainingProbe", "output_key": self.output_key}
        device = str(next(self.model.parameters()).device)
        attrs = provenance(command_line="landscape_probe.TrainingProbe (Python API)", device=device, seed=self.seed)
        return TrainResult([run], config, self.loss_units, attrs=attrs)

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write the train results file (one run) that ``probe show`` and ``probe plot`` read; returns its path."""
        return self.result().save(path, overwrite=overwrite)

    def _state(self) -> dict[str, Tensor]:
        return {name: value.detach().clone() for name, value in self.model.state_dict().items()}

    @contextlib.contextmanager
    def _weights(self, state: dict[str, Tensor]) -> Iterator[None]:
        """The model at ``state`` (parameters and buffers) for the block, then as it was."""
        current = self._state()
        self.model.load_state_dict(state)
        try:
            yield
        finally:
            self.model.load_state_dict(current)
