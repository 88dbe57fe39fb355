"""Several slice points per pass: ``torch.func.vmap`` over K points W + t_k·u, as many as a memory budget holds.

One point of a slice is one forward and one backward pass over the probe set
(:meth:`~landscape_probe.slicing.evaluator.ProbeEvaluator.evaluate`). For a
small model on a GPU those passes are short, and K points are expected to cost
less taken together (unmeasured; on a CPU they measured no cheaper:
``benchmarks/batched_points.py``, ``benchmarks/run.py``'s target-4 rows): per
probe chunk, one vmapped forward pass

    vmap(w ↦ (ℓ_b(w), F_b(w)))(W + t_1·u, ..., W + t_K·u),   ℓ_b(w) = (n_b / N)·L_b(w),

and one backward pass of Σ_k ℓ_b(w_k), whose gradient with respect to w_k is
∇ℓ_b(w_k) (the points share nothing). Each point's
loss Σ_b ℓ_b, outputs and gradient Σ_b ∇ℓ_b (summed over chunks in the order
``evaluate`` sums them) then go through the same bookkeeping
(:mod:`~landscape_probe.slicing.changes`); the numbers equal the
one-at-a-time ones up to rounding (vmap batches the matrix products).

K is memory: K copies of the weights, of the gradient and of the activations
autograd saves for the backward pass. ``points_per_pass="auto"`` takes

    K = clamp(budget // per_point, 1, points, CAP),
    per_point = saved + WEIGHT_COPIES · bytes(W),

``saved`` the bytes of the tensors one forward pass at W on the largest
chunk saves for its backward pass, each counted once (measured with
``torch.autograd.graph.saved_tensors_hooks``; the probe inputs and targets,
which vmap does not copy, left out), and the copies the point, its chunk's
gradient and its accumulated gradient. ``per_point`` is thus at least four
times the weights' bytes (1.6 GB at 100M float32 parameters), so a big model
gets K = 1 under the default budget (1 GiB) and the one-at-a-time sweep, with
its fixed flat buffers. On a CPU ``auto`` is 1: there a whole slice measured
no faster batched (see :func:`chosen`); ask for N to batch there anyway.

One point at a time, for the whole sweep, where vmap cannot go: a TorchScript
model, an evaluator that is not a ``ProbeEvaluator`` (or one summing over
ranks, ``--shard data``, whose sums are taken per point here too), or a model
that raises under vmap (Python control flow on the weights' values): its
first batched pass is caught and those points redone one at a time.

Example:
    >>> import torch
    >>> from landscape_probe.slicing.evaluator import ProbeEvaluator
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> evaluator = ProbeEvaluator(model, torch.randn(16, 4), torch.randint(0, 3, (16,)), "cross_entropy",
    ...                            ["0.weight", "2.weight"])
    >>> chosen(evaluator, "auto", parse_bytes("1GiB"), points=21), budgeted(evaluator, 2**30, points=21)
    (1, 21)
    >>> [len(at.outputs) for at in PointPasses(evaluator, torch.ones_like(evaluator.flat_base), [0.1, 0.2, 0.3], 2)]
    [16, 16, 16]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from landscape_probe.devices import is_out_of_memory
from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from torch import Tensor

    from landscape_probe.slicing.evaluator import Evaluation, ProbeEvaluator

CAP = 32
"""Most points per pass that ``auto`` chooses: past it, vmap's batched products gain nothing more."""
WEIGHT_COPIES = 3
"""Copies of the perturbed weights each batched point holds: the point, its chunk's gradient, its summed gradient."""
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(text: str) -> int:
    """A memory size such as ``512MiB``, ``2GiB``, ``1.5GB`` or ``1000000`` (bytes), in bytes.

    Raises:
        ProbeError: for anything else, or a size below one byte.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise ProbeError(f"Cannot read --memory-budget '{text}'; write a size such as 512MiB, 2GiB or 1GB.")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_points_per_pass(text: str) -> int | str:
    """``auto``, or a whole number of at least 1, from ``--points-per-pass``.

    Raises:
        ProbeError: for anything else.
    """
    if text.strip().lower() == "auto":
        return "auto"
    if not text.strip().isdecimal() or int(text) < 1:  # isdigit would pass '²', which int() refuses
        raise ProbeError(f"Cannot read --points-per-pass '{text}'; write auto or a whole number of at least 1.")
    return int(text)


def chunks(count: int, per_pass: int) -> list[list[int]]:
    """The point indices 0 … count − 1 in runs of ``per_pass`` consecutive ones (what one pass evaluates)."""
    return [list(range(start, min(start + per_pass, count))) for start in range(0, count, per_pass)]


def chosen(evaluator: Any, points_per_pass: int | str, budget: int, points: int) -> int:
    """The points per pass: ``points_per_pass`` itself, or the most the ``budget`` (bytes) holds for ``auto``.

    ``auto`` is 1 on a CPU: there a whole ``probe slice --layers`` process of the 16-layer sample took
    1.17× as long with K = 8 (vmap's first call imports sympy, 0.5 s), while inside one process a 21- or
    50-point ``run_slice`` one at a time took 1.02–1.19× as long as batched (medians of four runs of
    ``benchmarks/run.py``; 0.99–1.09 in an earlier one) and the points' passes alone 1.00–1.08×
    (``benchmarks/batched_points.py``).
    1 also where the evaluator cannot be batched (see the module's docstring).
    """
    inner = _batchable(evaluator)
    if inner is None or points <= 1:
        return 1
    if points_per_pass != "auto":
        return max(1, min(int(points_per_pass), points))
    if inner.flat_base.device.type == "cpu":
        return 1
    return budgeted(evaluator, budget, points)


def refused(evaluator: Any) -> bool:
    """Whether a vmapped pass of ``evaluator`` raised, so that its sweep went one point at a time."""
    return _unwrapped(evaluator).vmap_refused


def budgeted(evaluator: Any, budget: int, points: int) -> int:
    """``auto``'s K on a GPU: as many points as ``budget`` (bytes) holds, at most ``points`` and :data:`CAP`.

    Under ``--shard data`` (``evaluator`` a ``SummedEvaluator``) the ranks measure their own
    chunk and take the mean, so that every rank takes the same K.
    """
    inner = _batchable(evaluator)
    per_point = _saved_bytes(inner) + WEIGHT_COPIES * inner.flat_base.numel() * inner.flat_base.element_size()
    if inner is not evaluator:
        import torch

        from landscape_probe import distributed

        total = distributed.all_reduce_sum(torch.tensor([per_point], dtype=torch.int64, device=inner.x.device))
        per_point = int(total.item()) // distributed.world_size()
    return max(1, min(budget // max(per_point, 1), points, CAP))


class PointPasses:
    """The evaluations at W + t·u for each t of ``scales``, in order, ``per_pass`` points per pass.

    With ``per_pass`` 1 each point is written into one flat buffer and evaluated into another (the
    sweep's two, ``work``; given or made here), as :func:`~landscape_probe.slicing.engine.run_slice` has
    always done. The evaluation yielded is valid until the next one is asked for (its gradient is a buffer
    reused). :attr:`per_pass` reads 1 once the model has been found not to go through vmap.
    """

    def __init__(self, evaluator: Any, flat_unit: Tensor, scales: Sequence[float], per_pass: int,
                 work: tuple[Tensor, Tensor] | None = None) -> None:
        import torch

        self.evaluator, self.flat_unit, self.scales, self._asked = evaluator, flat_unit, list(scales), per_pass
        self.work = work or (torch.empty_like(flat_unit), torch.empty_like(flat_unit))

    @property
    def per_pass(self) -> int:
        """The points per pass asked for, or 1 where vmap cannot batch the evaluator (TorchScript, or it refused)."""
        return self._asked if _batchable(self.evaluator) is not None else 1

    def __iter__(self) -> Iterator[Evaluation]:
        if self.per_pass == 1:  # the views into the work buffers made once for the sweep, not once per point
            yield from self._one_at_a_time(self.scales)
            return
        for indices in chunks(len(self.scales), self.per_pass):
            scales = [self.scales[i] for i in indices]
            evaluations = self._batched(scales) if self.per_pass > 1 and len(scales) > 1 else None
            yield from evaluations if evaluations is not None else self._one_at_a_time(scales)

    def _one_at_a_time(self, scales: list[float]) -> Iterator[Evaluation]:
        import torch

        from landscape_probe.params import unflatten

        flat_point, flat_gradient = self.work
        point = unflatten(flat_point, self.evaluator.base)  # views: one add per point writes every layer
        for t in scales:
            torch.add(self.evaluator.flat_base, self.flat_unit, alpha=float(t), out=flat_point)
            yield self.evaluator.evaluate(point, gradient_into=flat_gradient)

    def _batched(self, scales: list[float]) -> list[Evaluation] | None:
        """The points of ``scales`` in one vmapped pass per chunk; None (and one at a time from now on) if it fails."""
        import torch

        flat_points = torch.empty((len(scales), self.flat_unit.numel()), dtype=self.flat_unit.dtype,
                                  device=self.flat_unit.device)
        for row, t in zip(flat_points, scales):  # the very values the one-at-a-time path evaluates
            torch.add(self.evaluator.flat_base, self.flat_unit, alpha=float(t), out=row)
        try:
            return evaluate_points(self.evaluator, flat_points)
        except Exception as err:  # noqa: BLE001 - whatever vmap cannot batch (control flow on values, ...)
            if is_out_of_memory(err):  # not vmap's refusal: the device's, which the user must hear about
                raise
            _batchable(self.evaluator).vmap_refused = True  # one point at a time; per_pass reads 1 from now on
            return None


def evaluate_points(evaluator: Any, flat_points: Tensor) -> list[Evaluation]:
    """:meth:`ProbeEvaluator.evaluate` at each row of ``flat_points`` (K × P, laid out as ``params.flatten``).

    The chunks of the probe set are taken in turn, all K points per chunk in one vmapped forward and backward
    pass; the losses and gradients are summed over the chunks in order. Under ``--shard data``
    (a ``SummedEvaluator``) each point's loss and gradient are then weighted and summed over the ranks,
    as ``SummedEvaluator.evaluate`` does for one point.
    """
    import dataclasses

    import torch
    from torch.func import vmap

    from landscape_probe.params import unflatten
    from landscape_probe.slicing.evaluator import Evaluation

    inner = _batchable(evaluator)
    base = inner.base

    def chunk_share(flat_weights: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        outputs = inner.forward(unflatten(flat_weights, base), x)
        return inner.batch_loss(outputs, y), outputs

    # vmap of the forward pass, then one ordinary backward pass of Σ_k ℓ_b(w_k): its gradient with respect to
    # w_k is ∇ℓ_b(w_k), the points sharing nothing. (torch.func.grad_and_value would give the same, but its
    # first call imports torch._dynamo, 1.5 s, more than batching saves on a 21-point slice of a small model.)
    batched = vmap(chunk_share, in_dims=(0, None, None))
    leaves = flat_points.detach().requires_grad_(True)
    gradients: Tensor | None = None
    losses: Tensor | None = None
    outputs: list[Tensor] = []
    for x, y in inner.batches():
        with torch.enable_grad():
            loss, out = batched(leaves, x, y)
            (gradient,) = torch.autograd.grad(loss.sum(), leaves)
        gradients = gradient if gradients is None else gradients.add_(gradient)
        losses = loss.detach() if losses is None else losses + loss.detach()
        outputs.append(out.detach().reshape(len(flat_points), len(x), -1))
    whole = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
    evaluations = [Evaluation(outputs=whole[k], loss=losses[k], gradient=unflatten(gradients[k], base))
                   for k in range(len(flat_points))]
    if inner is evaluator:
        return evaluations
    from landscape_probe import distributed

    distributed.all_reduce_sum(gradients.mul_(evaluator.weight))
    summed = distributed.all_reduce_sum(losses * evaluator.weight)
    return [dataclasses.replace(at, loss=summed[k]) for k, at in enumerate(evaluations)]


def _batchable(evaluator: Any) -> ProbeEvaluator | None:
    """The ``ProbeEvaluator`` whose points vmap can batch (inside a ``SummedEvaluator``), or None."""
    from landscape_probe.slicing.evaluator import ProbeEvaluator

    inner = _unwrapped(evaluator)
    return inner if isinstance(inner, ProbeEvaluator) and inner.functional and not inner.vmap_refused else None


def _unwrapped(evaluator: Any) -> Any:
    """The evaluator itself, or the one a ``SummedEvaluator`` (``--shard data``) sums over ranks."""
    from landscape_probe.data_shard import SummedEvaluator

    return evaluator.evaluator if isinstance(evaluator, SummedEvaluator) else evaluator


def _saved_bytes(evaluator: ProbeEvaluator) -> int:
    """Bytes one forward pass at W on the first (largest) chunk saves for backward, each tensor counted once."""
    import torch

    x, y = next(evaluator.batches())
    shared = {evaluator.x.untyped_storage().data_ptr(), evaluator.y.untyped_storage().data_ptr()}
    saved: dict[tuple[int, int], int] = {}

    def pack(tensor: Tensor) -> Tensor:
        if tensor.untyped_storage().data_ptr() not in shared:
            saved[(tensor.data_ptr(), tensor.nbytes)] = tensor.nbytes
        return tensor

    leaves = {name: value.detach().requires_grad_(True) for name, value in evaluator.base.items()}
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        evaluator.batch_loss(evaluator.forward(leaves, x), y)
    return sum(saved.values())
