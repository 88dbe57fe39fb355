"""What changed at one point W + t·u of a slice, against W: the per-point bookkeeping of the sweep.

Each point's loss, ``||g_l(t) − g_l(0)||`` per layer (:func:`record_point`), ``||F(t) − F(0)||``,
correct answers and ``KL(p_0 || p_t)`` (:class:`OutputChanges`) are kept as tensors on the device,
so that a sweep copies each column to the host once, whether its points were evaluated one at a
time or several per pass (:mod:`~landscape_probe.slicing.batched_points`); the ratios to W's
norms are taken on the host (:func:`ratio_or_nan`).

Example:
    >>> import numpy as np
    >>> ratio_or_nan(np.array([1.0, 2.0]), np.array([2.0, 0.0])).tolist()
    [0.5, nan]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

    from landscape_probe.slicing.evaluator import Evaluation


def record_point(columns: dict[str, list[Tensor]], at_t: Evaluation, g0_parts: list[Tensor], names: list[str],
                 outputs: OutputChanges) -> None:
    """Append one point's loss and ``||g_l(t) − g_l(0)||`` per layer to ``columns``, and hand its outputs to
    ``outputs``: tensors on the device, no host sync.

    ``at_t.gradient`` is overwritten (g(t) − g(0), per layer): it is the sweep's scratch buffer.
    """
    import torch

    columns["loss"].append(at_t.loss)
    # torch._foreach_*: one call over all layers (as torch.optim uses them) instead of one per layer;
    # g(t) is the sweep's gradient buffer, overwritten at the next point, so the difference is taken in place
    differences = [at_t.gradient[n] for n in names]
    torch._foreach_sub_(differences, g0_parts)
    columns["gradient_change"].extend(torch._foreach_norm(differences))
    outputs.add(at_t.outputs)


class OutputChanges:
    """``||F(t) − F(0)||``, correct answers and ``KL(p_0 || p_t)`` of a sweep's points, as tensors on the device.

    One object per sweep, shared by the slice and the loss-only line. Each
    point is taken as it comes: tried a block of points at a time, the stacked
    outputs fell out of the cache and cost more (21 points of 512 × 100 logits:
    23–35 ms against 15–19 ms). KL is ``Σ p0 (log p0 − log pt) / n`` with p0
    taken once, the same numbers as ``kl_div(..., log_target=True)`` (tested),
    which takes exp of the target at every call (21 points of 512 × 100 logits,
    ``timeit``: 5 ms against 30 ms).

    Args:
        reference: F(0), the outputs at W (n × C).
        targets: the labels, for a classifier; None otherwise (then only ``function_change``).
    """

    def __init__(self, reference: Tensor, targets: Tensor | None) -> None:
        import torch

        self.reference = reference
        self.targets = None if targets is None else targets.reshape(-1)
        self.log_p0 = None if targets is None else torch.log_softmax(reference.double(), dim=1)
        self.p0 = None if self.log_p0 is None else self.log_p0.exp()
        self.columns: dict[str, list[Tensor]] = {"function_change": [], "correct": [], "kl_divergence": []}

    def add(self, outputs: Tensor) -> None:
        """One point's numbers from its outputs F(t) (n × C)."""
        import torch

        self.columns["function_change"].append(torch.dist(outputs, self.reference))
        if self.log_p0 is not None:
            self.columns["correct"].append((outputs.argmax(dim=1) == self.targets).sum())
            terms = (self.log_p0 - torch.log_softmax(outputs.double(), dim=1)).mul_(self.p0)
            self.columns["kl_divergence"].append(terms.sum() / len(self.targets))

    def finished(self) -> dict[str, Tensor]:
        """Every point's numbers, one tensor per column (the columns with any points)."""
        import torch

        return {key: torch.stack(parts) for key, parts in self.columns.items() if parts}


def ratio_or_nan(numerator: np.ndarray, denominator: float | np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive."""
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)
