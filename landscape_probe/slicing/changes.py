"""What changed at one point W + t·u of a slice, against W: the per-point bookkeeping of the sweep.

Each point's loss, ``||F(t) − F(0)||``, ``||g_l(t) − g_l(0)||`` per layer, correct answers and
``KL(p_0 || p_t)`` are kept as tensors on the device (:func:`record_point`), so that a sweep copies
each column to the host once, whether its points were evaluated one at a time or several per pass
(:mod:`~landscape_probe.slicing.batched_points`); the ratios to W's norms are taken on the host
(:func:`ratio_or_nan`).

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


def record_point(
    columns: dict[str, list[Tensor]], at_t: Evaluation, outputs_at_zero: Tensor, g0_parts: list[Tensor],
    names: list[str], log_p0: Tensor | None, targets: Tensor,
) -> None:
    """Append one point's numbers to ``columns`` as tensors on the device: no host sync, few kernels.

    ``at_t.gradient`` is overwritten (g(t) − g(0), per layer): it is the sweep's scratch buffer.
    """
    import torch

    columns["loss"].append(at_t.loss)
    columns["function_change"].append(torch.dist(at_t.outputs, outputs_at_zero))
    # torch._foreach_*: one call over all layers (as torch.optim uses them) instead of one per layer;
    # g(t) is the sweep's gradient buffer, overwritten at the next point, so the difference is taken in place
    differences = [at_t.gradient[n] for n in names]
    torch._foreach_sub_(differences, g0_parts)
    columns["gradient_change"].extend(torch._foreach_norm(differences))
    if log_p0 is not None:
        columns["correct"].append((at_t.outputs.argmax(dim=1) == targets.reshape(-1)).sum())
        columns["kl_divergence"].append(kl_divergence(log_p0, at_t.outputs))


def ratio_or_nan(numerator: np.ndarray, denominator: float | np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive."""
    denominator = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def kl_divergence(log_p0: Tensor, logits: Tensor) -> Tensor:
    """mean_n Σ_c p0 (log p0 − log pt), from log p0 and the logits at t."""
    import torch

    log_pt = torch.log_softmax(logits.double(), dim=1)
    return torch.nn.functional.kl_div(log_pt, log_p0, reduction="batchmean", log_target=True)
