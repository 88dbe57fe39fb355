"""What changed at one point W + t·u of a slice, against W: the per-point bookkeeping of the sweep.

Each point's loss, ``||g_l(t) − g_l(0)||`` per layer (:func:`record_point`), ``||F(t) − F(0)||``,
correct answers and ``KL(p_0 || p_t)`` (:class:`OutputChanges`, a block of points at a time) are kept
as tensors on the device, so that a sweep copies each column to the host once, whether its points
were evaluated one at a time or several per pass (:mod:`~landscape_probe.slicing.batched_points`);
the ratios to W's norms are taken on the host (:func:`ratio_or_nan`).

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
    """``||F(t) − F(0)||``, correct answers and ``KL(p_0 || p_t)`` of a sweep's points, taken a block at a time.

    The points' outputs are held until they fill :attr:`BLOCK_BYTES`, and the
    block (K × n × C) then takes a few vectorised kernels instead of a handful
    of small ones per point (about 0.15 ms a point on the 16-layer sample's
    512 × 10 outputs, 2–3 % of its forward+backward pass). Each number is
    reduced over its own point's row only, so it does not depend on the block
    the point fell in.

    Args:
        reference: F(0), the outputs at W (n × C).
        targets: the labels, for a classifier; None otherwise (then only ``function_change``).
    """

    BLOCK_BYTES = 32 * 2**20

    def __init__(self, reference: Tensor, targets: Tensor | None) -> None:
        import torch

        self.reference = reference
        self.targets = None if targets is None else targets.reshape(-1)
        self.log_p0 = None if targets is None else torch.log_softmax(reference.double(), dim=1)
        self.columns: dict[str, list[Tensor]] = {"function_change": [], "correct": [], "kl_divergence": []}
        self._held: list[Tensor] = []

    def add(self, outputs: Tensor) -> None:
        """Hold one point's outputs F(t) (n × C); a full block is reduced at once."""
        self._held.append(outputs)
        if len(self._held) * outputs.nbytes >= self.BLOCK_BYTES:
            self._reduce_held()

    def finished(self) -> dict[str, Tensor]:
        """Every point's numbers so far, one tensor per column (the columns with any points)."""
        import torch

        self._reduce_held()
        return {key: torch.cat(parts) for key, parts in self.columns.items() if parts}

    def _reduce_held(self) -> None:
        import torch

        if not self._held:
            return
        block = torch.stack(self._held)
        self._held = []
        self.columns["function_change"].append(torch.linalg.vector_norm((block - self.reference).flatten(1), dim=1))
        if self.log_p0 is not None:
            self.columns["correct"].append((block.argmax(dim=2) == self.targets).sum(dim=1))
            log_pt = torch.log_softmax(block.double(), dim=2)
            terms = torch.nn.functional.kl_div(log_pt, self.log_p0.expand_as(log_pt), reduction="none",
                                               log_target=True)
            self.columns["kl_divergence"].append(terms.sum(dim=(1, 2)) / len(self.targets))


def ratio_or_nan(numerator: np.ndarray, denominator: float | np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive."""
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)
