"""The model at a given state on the probe set, forward passes only: loss, accuracy and outputs.

A *state* is every floating-point parameter and buffer of the model, by name
(a batch norm's running statistics included, so that interpolating two
checkpoints reaches each end exactly); integer buffers (``num_batches_tracked``)
stay the model's own. The evaluator owns its model (a loaded checkpoint, or a
copy of a user's module): a state is written into the model's own tensors in
place, with no new tensor per point and no per-call bookkeeping, which works
for TorchScript modules too. The loss is the mean over the N probe examples
taken in batches, L = Σ_b (n_b / N) · L_b, as in
:mod:`landscape_probe.slicing.evaluator`.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> evaluator = ForwardEvaluator(model, x, y, "cross_entropy")
    >>> sorted(evaluator.base), evaluator.evaluate(evaluator.base).outputs.shape
    (['bias', 'weight'], torch.Size([8, 2]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from landscape_probe.losses import classifies, loss_function
from landscape_probe.params import Params


@dataclass(frozen=True)
class Forward:
    """One forward pass over the probe set: outputs F (N × outputs), mean loss, accuracy (NaN for regression)."""

    outputs: Tensor
    loss: float
    accuracy: float


def model_state(model: nn.Module) -> Params:
    """Detached copies of the model's floating-point parameters and buffers, by name."""
    return {name: tensor.detach().clone() for name, tensor in state_slots(model).items()}


def state_slots(model: nn.Module) -> Params:
    """The model's own floating-point parameter and buffer tensors, by name (written in place to move it)."""
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {name: tensor for name, tensor in named.items() if tensor.is_floating_point()}


class ForwardEvaluator:
    """Evaluate a model it owns on a fixed probe set, at states written into the model's own tensors.

    Args:
        model: the network, in ``eval()`` mode, on the probe set's device and dtype; the evaluator
            changes its tensors in place (give it a copy of a module you keep using).
        x, y: probe inputs and targets (integer targets: classes, accuracy is measured).
        loss_name: a name known to :func:`landscape_probe.losses.loss_function`.
        batch_size: most examples per forward pass.

    Attributes:
        base: the state the model had when given (detached copies).
        slots: the model's own tensors, by name: write into them (``torch.add(..., out=slot)``) and
            call :meth:`run` to evaluate wherever they point.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, loss_name: str, batch_size: int = 1024) -> None:
        self.model, self.x, self.y = model, x, y
        self.loss = loss_function(loss_name)
        self.batch_size = max(1, int(batch_size))
        self.classification = classifies(y)
        self.slots = {name: tensor.detach() for name, tensor in state_slots(model).items()}
        self.base = {name: tensor.clone() for name, tensor in self.slots.items()}

    def evaluate(self, state: Params) -> Forward:
        """Outputs, mean loss and accuracy at ``state`` (names as in ``base``; missing names keep their value)."""
        with torch.no_grad():
            for name, value in state.items():
                self.slots[name].copy_(value)
        return self.run()

    def pack(self, names: list[str]) -> Tensor | None:
        """Re-home the named parameters as consecutive views into one flat tensor, and return it.

        Writing the flat tensor then moves all of them at once (one operation
        instead of one per layer); their values are kept. None, with nothing
        changed, when a name is not a parameter, they differ in dtype or device,
        or the model keeps its own tensors (TorchScript).
        """
        params = dict(self.model.named_parameters())
        if not names or any(name not in params for name in names) or isinstance(self.model, torch.jit.ScriptModule):
            return None
        if len({(params[name].dtype, params[name].device) for name in names}) > 1:
            return None
        flat = torch.cat([params[name].detach().reshape(-1) for name in names])
        views = flat.split([params[name].numel() for name in names])
        with torch.no_grad():
            for name, view in zip(names, views, strict=True):
                params[name].data = view.view_as(params[name])
                self.slots[name] = params[name].detach()
        return flat

    def unpack(self, names: list[str]) -> None:
        """Give the named parameters (packed by :meth:`pack`) storage of their own again, values kept."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name in names:
                params[name].data = params[name].detach().clone()
                self.slots[name] = params[name].detach()

    def restore(self) -> None:
        """Put the model back at ``base``."""
        self.evaluate(self.base)

    def run(self, with_accuracy: bool = True) -> Forward:
        """Outputs, mean loss and accuracy (NaN unless ``with_accuracy``) with the model's tensors as they are now."""
        with torch.no_grad():
            if len(self.x) <= self.batch_size:  # one pass: no slicing, accumulating or concatenating
                out = self.model(self.x)
                loss = float(self.loss(out, self.y))
                stacked = out.reshape(len(self.x), -1)
            else:
                outputs: list[Tensor] = []
                total = torch.zeros((), dtype=torch.float64, device=self.x.device)
                for start in range(0, len(self.x), self.batch_size):
                    x, y = self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
                    out = self.model(x)
                    total += self.loss(out, y).double() * (len(x) / len(self.x))
                    outputs.append(out.reshape(len(x), -1))
                stacked, loss = torch.cat(outputs), float(total)
        accuracy = (int(torch.count_nonzero(stacked.argmax(dim=1) == self.y)) / len(self.y)
                    if self.classification and with_accuracy else float("nan"))
        return Forward(outputs=stacked, loss=loss, accuracy=accuracy)


def relative_change(outputs: Tensor, reference: Tensor, reference_norm: float | None = None) -> float:
    """||F − F₀||_F / ||F₀||_F, in float64 (NaN when F₀ = 0); give ``reference_norm`` to reuse ||F₀||_F."""
    difference = float(torch.linalg.vector_norm(outputs - reference, dtype=torch.float64))
    if reference_norm is None:
        reference_norm = float(torch.linalg.vector_norm(reference, dtype=torch.float64))
    return difference / reference_norm if reference_norm > 0 else float("nan")
