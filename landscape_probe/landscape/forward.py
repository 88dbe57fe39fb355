"""The model at a given state on the probe set, forward passes only: loss, accuracy and outputs.

A *state* is every floating-point parameter and buffer of the model, by name
(a batch norm's running statistics included, so that interpolating two
checkpoints reaches each end exactly); integer buffers (``num_batches_tracked``)
stay the model's own. The loss is the mean over the N probe examples taken in
batches, L = Σ_b (n_b / N) · L_b, as in :mod:`landscape_probe.slicing.evaluator`.

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

from landscape_probe.errors import ProbeError
from landscape_probe.losses import loss_function
from landscape_probe.params import Params


@dataclass(frozen=True)
class Forward:
    """One forward pass over the probe set: outputs F (N × outputs), mean loss, accuracy (NaN for regression)."""

    outputs: Tensor
    loss: float
    accuracy: float


def model_state(model: nn.Module) -> Params:
    """Detached copies of the model's floating-point parameters and buffers, by name."""
    named = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {name: tensor.detach().clone() for name, tensor in named.items() if tensor.is_floating_point()}


class ForwardEvaluator:
    """Evaluate a model on a fixed probe set at replaced values of its state, without gradients.

    Args:
        model: the network, in ``eval()`` mode, on the probe set's device and dtype.
        x, y: probe inputs and targets (integer targets: classes, accuracy is measured).
        loss_name: a name known to :func:`landscape_probe.losses.loss_function`.
        batch_size: most examples per forward pass.

    Raises:
        ProbeError: for a TorchScript module with floating-point buffers, which cannot be replaced from outside.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, loss_name: str, batch_size: int = 1024) -> None:
        self.model, self.x, self.y = model, x, y
        self.loss = loss_function(loss_name)
        self.batch_size = max(1, int(batch_size))
        self.classification = not torch.is_floating_point(y)
        self.base = model_state(model)
        if isinstance(model, torch.jit.ScriptModule):
            self._check_scriptable(model)

    @staticmethod
    def _check_scriptable(model: nn.Module) -> None:
        buffers = [name for name, b in model.named_buffers() if b.is_floating_point()]
        if buffers:
            raise ProbeError(
                f"This TorchScript model keeps floating-point buffers ({buffers[0]}, ...) that cannot be replaced "
                "from outside; save it as a state_dict or a probe checkpoint to use it here."
            )

    def evaluate(self, state: Params) -> Forward:
        """Outputs, mean loss and accuracy with the model's state replaced by ``state`` (names as in ``base``)."""
        from landscape_probe.slicing.evaluator import ProbeEvaluator

        outputs: list[Tensor] = []
        loss = 0.0
        with torch.no_grad():
            if isinstance(self.model, torch.jit.ScriptModule):
                swapper = ProbeEvaluator(self.model, self.x[:1], self.y[:1], "mse", list(state))
                run = swapper.forward
            else:
                def run(weights: Params, x: Tensor) -> Tensor:
                    return torch.func.functional_call(self.model, weights, (x,), strict=False)
            for start in range(0, len(self.x), self.batch_size):
                x, y = self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
                out = run(state, x)
                loss += float(self.loss(out, y)) * len(x) / len(self.x)
                outputs.append(out.reshape(len(x), -1))
        stacked = torch.cat(outputs)
        accuracy = float((stacked.argmax(dim=1) == self.y).double().mean()) if self.classification else float("nan")
        return Forward(outputs=stacked, loss=loss, accuracy=accuracy)


def relative_change(outputs: Tensor, reference: Tensor) -> float:
    """||F − F₀||_F / ||F₀||_F, in float64 (NaN when F₀ = 0)."""
    difference = torch.linalg.vector_norm((outputs - reference).double())
    scale = torch.linalg.vector_norm(reference.double())
    return float(difference / scale) if float(scale) > 0 else float("nan")
