"""The model at weights W + ΔW on the probe set: the one place that runs it.

Every quantity of ``probe slice`` comes from evaluating the same model, on the
same probe examples, with some of its parameters replaced by a dict of tensors.
:class:`ProbeEvaluator` does exactly that, with no copy of the model per point:

- ordinary ``nn.Module`` s (the zoo, ``torch.export`` programs' modules) have
  the given tensors put in their ``_parameters`` slots for the call, as
  :func:`torch.func.functional_call` does, but with the slots looked up once
  (functional_call's per-call bookkeeping cost 10 % of a pass on the 16-layer
  sample); a model with tied or parametrized weights goes through
  functional_call itself, which handles them;
- TorchScript modules, which the stateless API refuses, have the given tensors
  swapped in as attributes for the duration of the call and their own
  parameters put back afterwards (the swap keeps autograd's graph to the given
  tensors, so gradients and Hessian-vector products flow the same way).
  ``torch.func`` transforms silently lose the graph through TorchScript (a
  forward-mode product comes out zero), so there this path raises
  ``NotImplementedError`` and ``curvature.hessian_vector_product_forward_over_reverse``
  falls back to double-backward autograd (the default product).

The probe set is split into batches of at most ``batch_size`` examples; the loss
is the mean over all N examples, L(W) = Σ_b (n_b / N) · L_b(W), so the result
does not depend on the batch size.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> evaluator = ProbeEvaluator(model, x, y, "cross_entropy", ["weight"])
    >>> at_w = evaluator.evaluate(evaluator.base)
    >>> at_w.outputs.shape, sorted(at_w.gradient)
    (torch.Size([8, 2]), ['weight'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from landscape_probe.curvature.hessian import GradientGraph, differentiable_twice
from landscape_probe.errors import ProbeError
from landscape_probe.losses import loss_function
from landscape_probe.params import Params, detached_params, flatten, has_tied_parameters, unflatten

if TYPE_CHECKING:
    from landscape_probe.slicing.chunked_hessian import ChunkedHessian


@dataclass(frozen=True)
class Evaluation:
    """What one pass over the probe set gives at one set of weights.

    Attributes:
        outputs: F, the N × outputs matrix of network outputs (detached).
        loss: the mean loss over the probe set, a 0-d tensor on the probe set's device (read it once, at the end).
        gradient: ∇L over the perturbed layers (detached).
    """

    outputs: Tensor
    loss: Tensor
    gradient: Params


class ProbeEvaluator:
    """Evaluate a model on a fixed probe set at replaced values of some of its parameters.

    Args:
        model: the network, in ``eval()`` mode, on the probe set's device and dtype.
        x: probe inputs (N × ...).
        y: probe targets.
        loss_name: a name known to :func:`landscape_probe.losses.loss_function`.
        layer_names: the parameters that get replaced (the perturbed layers).
        batch_size: most examples per forward pass (``--chunk-size``).
        hold_weights_once: make the model's own perturbed parameters views into :attr:`flat_base`
            (same values, one copy of W in memory instead of two; at 100M parameters that is 0.4 GB).
            Only for a caller that does not write into the model's parameters while the evaluator
            lives (``run_slice``, which calls :meth:`give_weights_back` at the end); a model going through
            ``functional_call`` or TorchScript keeps its own.

    Raises:
        ProbeError: when a layer name is not a parameter of the model.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        loss_name: str,
        layer_names: Sequence[str],
        batch_size: int = 1024,
        hold_weights_once: bool = False,
    ) -> None:
        named = dict(model.named_parameters())
        missing = [name for name in layer_names if name not in named]
        if missing:
            raise ProbeError(f"The model has no parameter named {', '.join(missing)}.")
        if len(x) == 0:
            raise ProbeError("The probe set is empty.")
        self.model = model
        self.x = x
        self.y = y
        self.loss = loss_function(loss_name)
        self.layer_names = list(layer_names)
        self.batch_size = max(1, int(batch_size))
        at_w = detached_params(model, self.layer_names)
        self.flat_base = flatten(at_w) if at_w else torch.zeros(0)  # a copy (torch.cat)
        self.base: Params = unflatten(self.flat_base, at_w)  # views into flat_base: W is held once
        self.functional = not isinstance(model, torch.jit.ScriptModule)
        self.vmap_refused = False  # set once a vmapped pass raised: the sweeps then go one point at a time
        self._slots = _parameter_slots(model, self.layer_names) if self.functional else None
        self._held: list[nn.Parameter] = []
        if hold_weights_once and self._slots is not None:
            self._held = [named[name] for name in self.layer_names]
            for parameter, view in zip(self._held, self.base.values()):
                parameter.data = view

    def give_weights_back(self) -> None:
        """Undo ``hold_weights_once``: each parameter gets storage of its own again, a copy of the same values.

        So that a caller's model keeps no views into this evaluator's buffer
        (``torch.save`` of one such parameter would write the whole buffer).
        """
        for parameter in self._held:
            parameter.data = parameter.data.clone()
        self._held = []

    def forward(self, weights: Params, x: Tensor) -> Tensor:
        """Network outputs on ``x`` with the perturbed layers set to ``weights``, differentiable in them."""
        if self._slots is not None and weights.keys() <= self._slots.keys():
            with _parameters_replaced(self._slots, weights):
                return self.model(x)
        if self.functional:
            return torch.func.functional_call(self.model, weights, (x,), strict=False)
        if any(_is_transformed(value) for value in weights.values()):
            raise NotImplementedError("torch.func transforms do not see through a TorchScript module; use autograd.")
        with _swapped_attributes(self.model, weights):
            return self.model(x)

    def loss_fn(self, weights: Params) -> Tensor:
        """L(weights): the mean probe loss as a 0-d tensor that autograd can differentiate (twice)."""
        total = torch.zeros((), dtype=self.x.dtype, device=self.x.device)
        for x, y in self.batches():
            total = total + self.batch_loss(self.forward(weights, x), y)
        return total

    def evaluate(self, weights: Params, gradient_into: Tensor | None = None) -> Evaluation:
        """Outputs F, mean loss and its gradient over the perturbed layers at ``weights``.

        One forward and one backward pass per batch, each batch's graph freed
        before the next. Non-finite values (a huge step overflowing) are returned
        as they are, never raised. ``gradient_into``, a flat buffer of the
        layers' total size (laid out as ``params.flatten``), receives the
        gradient: it is zeroed and each batch's gradient is accumulated into it
        in place (autograd adds into a leaf's ``.grad``), so a sweep reuses one
        buffer instead of a fresh full-size gradient per point; the returned
        gradient is then views into it, valid until its next use. The numbers
        are the same either way (0 + g₁ + g₂ … in the same order).
        """
        leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
        into = None if gradient_into is None else unflatten(gradient_into.zero_(), leaves)
        outputs: list[Tensor] = []
        loss: Tensor | None = None
        gradient: list[Tensor | None] | None = None
        try:
            for leaf, part in zip(leaves.values(), (into or {}).values()):
                leaf.grad = part
            for x, y in self.batches():
                with torch.enable_grad():
                    out = self.forward(leaves, x)
                    batch_loss = self.batch_loss(out, y)
                    if into is not None:
                        torch.autograd.backward(batch_loss, inputs=list(leaves.values()))
                    else:
                        parts = torch.autograd.grad(batch_loss, list(leaves.values()), allow_unused=True)
                        gradient = list(parts) if gradient is None else [_sum(a, b) for a, b in zip(gradient, parts)]
                outputs.append(out.detach().reshape(len(x), -1))
                loss = batch_loss.detach() if loss is None else loss + batch_loss.detach()
        finally:
            for leaf in leaves.values():
                leaf.grad = None
        assert loss is not None  # the probe set is not empty (checked at __init__)
        return Evaluation(outputs=_joined(outputs), loss=loss,
                          gradient=into if into is not None else _filled(gradient, leaves))

    def evaluate_with_hessian(
        self, weights: Params, keep_graph: bool = True
    ) -> tuple[Evaluation, GradientGraph | ChunkedHessian]:
        """:meth:`evaluate`, with the gradient's graph kept for Hessian-vector products at ``weights``.

        The gradient is built with ``create_graph=True`` over the whole probe set
        at once (the graph holds every batch's activations until
        :meth:`GradientGraph.release`), so λ_max and ``uᵀHu`` at W cost no extra
        forward pass. ``keep_graph=False``: no graph is kept; each product is
        taken batch by batch, one batch's graph at a time
        (:class:`~landscape_probe.slicing.chunked_hessian.ChunkedHessian`).
        """
        if not keep_graph:
            from landscape_probe.slicing.chunked_hessian import ChunkedHessian

            at_w = self.evaluate(weights)
            return at_w, ChunkedHessian(self, weights, at_w)
        leaves = {k: v.detach().requires_grad_(True) for k, v in weights.items()}
        outputs: list[Tensor] = []
        with torch.enable_grad(), differentiable_twice():
            loss = torch.zeros((), dtype=self.x.dtype, device=self.x.device)
            for x, y in self.batches():
                out = self.forward(leaves, x)
                loss = loss + self.batch_loss(out, y)
                outputs.append(out.detach().reshape(len(x), -1))
            graph = GradientGraph(loss, leaves)
        return Evaluation(outputs=_joined(outputs), loss=graph.loss, gradient=graph.gradient), graph

    def batch_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The batch's share n_b / N of the mean loss (the whole loss when one batch holds the probe set)."""
        loss = self.loss(outputs, targets)
        return loss if len(targets) == len(self.y) else loss * (len(targets) / len(self.y))

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The probe set in batches of at most ``batch_size`` examples, in order."""
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]


def _joined(outputs: list[Tensor]) -> Tensor:
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def _sum(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a.add_(b)


def _filled(parts: list[Tensor | None], like: Params) -> Params:
    """The gradient as a dict, zeros for a layer the loss does not reach."""
    return {k: torch.zeros_like(v) if part is None else part for (k, v), part in zip(like.items(), parts)}


def _parameter_slots(model: nn.Module, names: Sequence[str]) -> dict[str, tuple[nn.Module, str]] | None:
    """Each name's (owning module, attribute), or None where a plain swap would be wrong (tied, parametrized)."""
    from torch.nn.utils import parametrize

    tied = has_tied_parameters(model)
    if tied or any(parametrize.is_parametrized(module) for module in model.modules()):
        return None
    slots = {}
    for name in names:
        owner_name, _, leaf = name.rpartition(".")
        slots[name] = (model.get_submodule(owner_name), leaf)
    return slots


@contextlib.contextmanager
def _parameters_replaced(slots: dict[str, tuple[nn.Module, str]], weights: Params) -> Iterator[None]:
    """Put ``weights`` in their modules' ``_parameters`` for the call, then the original parameters back."""
    originals = []
    try:
        for name, value in weights.items():
            owner, leaf = slots[name]
            originals.append((owner, leaf, owner._parameters[leaf]))
            owner._parameters[leaf] = value
        yield
    finally:
        for owner, leaf, original in reversed(originals):
            owner._parameters[leaf] = original


def _is_transformed(tensor: Tensor) -> bool:
    """Whether ``tensor`` is wrapped by a torch.func transform (grad, jvp, vmap)."""
    return bool(torch._C._functorch.is_functorch_wrapped_tensor(tensor))


@contextlib.contextmanager
def _swapped_attributes(model: nn.Module, weights: Params) -> Iterator[None]:
    """Set ``model.<name> = weights[name]`` for the call, then put the original parameters back."""
    originals = dict(model.named_parameters())
    try:
        for name, value in weights.items():
            try:
                _set_attribute(model, name, value)
            except RuntimeError as err:
                raise ProbeError(f"Cannot replace '{name}' in this TorchScript module ({err}).") from err
        yield
    finally:
        for name in weights:
            _set_attribute(model, name, originals[name])


def _set_attribute(model: nn.Module, name: str, value: Tensor) -> None:
    *path, leaf = name.split(".")
    owner = model
    for part in path:
        owner = getattr(owner, part)
    setattr(owner, leaf, value)
