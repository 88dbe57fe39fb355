"""``probe train --shard data``: one run trained by every rank together, each on its part of every batch.

Every rank draws the batch one process would (the same permutation of the training set, the same
B = ``--batch-size`` examples) and takes a contiguous part of it, b_r examples (:func:`part_of`).
The batch's mean loss is

    L = (1/B) Σ_i ℓ_i = Σ_r (b_r / B) · L_r,

L_r the mean over rank r's part, so ∇L = Σ_r (b_r / B) · ∇L_r: each rank back-propagates its weighted
part, and the gradients and weighted losses are summed over the ranks in one all-reduce
(:func:`batch_gradient`). Every rank then holds ∇L in ``.grad`` and L, and takes the same optimiser
step from the same weights, so the weights stay equal on every rank, and equal to one process's up to
the order of the floating-point sums. This is what ``DistributedDataParallel`` does, written as one
explicit all-reduce after the backward pass, so that any optimiser that reads only ``.grad`` (the
table's, and a user's ``module:Class``) steps as in one process. A parameter no rank's part reached
keeps ``.grad`` None, as it would in one process.

Refused (:func:`check_data_parallel`): a batch size that the ranks cannot divide
equally; K-FAC, which also reads each layer's inputs and output gradients and would see only its rank's
part; and batch normalisation, whose statistics would be each rank's part's instead of the batch's.

Example:
    >>> import torch
    >>> part_of(torch.arange(6))  # one process: the whole batch, weight 1
    (tensor([0, 1, 2, 3, 4, 5]), 1.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from landscape_probe import distributed
from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from landscape_probe.losses import LossFn
    from landscape_probe.training.config import TrainConfig


def uses_data_parallel(shard: str | None, runs: int) -> bool:
    """Whether each run is divided among ``torchrun``'s ranks: ``--shard data``, or by default a single run.

    Raises:
        ProbeError: for a ``shard`` that is neither ``work`` nor ``data``.
    """
    if shard is not None:
        distributed.check_shard(shard)
    return distributed.launched() and (shard or ("data" if runs == 1 else "work")) == "data"


def check_data_parallel(config: TrainConfig, model: nn.Module) -> None:
    """Refuse, before any run, what ``--shard data`` cannot train as one process does.

    Args:
        config: the sweep.
        model: one of its networks (batch normalisation is a matter of the architecture, not of the depth).

    Raises:
        ProbeError: the batch size is not a multiple of the number of ranks, an optimiser is K-FAC,
            or the network has batch normalisation.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    from landscape_probe.optim import OPTIMIZERS

    ranks = distributed.world_size()
    if config.batch_size % ranks:
        raise ProbeError(f"--shard data divides every batch equally among the {ranks} ranks, so --batch-size "
                         f"must be a multiple of {ranks}, not {config.batch_size}.")
    for name in config.optimizers:
        if name in OPTIMIZERS and not OPTIMIZERS[name].gradient_only:
            raise ProbeError(f"{name} reads each layer's inputs and output gradients, of which a rank under "
                             "--shard data sees only its part of the batch; train it with --shard work or "
                             "as one process.")
    if any(isinstance(module, _BatchNorm) for module in model.modules()):
        raise ProbeError("The network has batch normalisation, whose statistics under --shard data would be "
                         "each rank's part of the batch; train it with --shard work or as one process.")


def part_of(batch: Tensor) -> tuple[Tensor, float]:
    """This rank's contiguous part of the batch's indices, and its weight b_r / B."""
    mine = distributed.contiguous_part(batch)
    return mine, len(mine) / len(batch)


def batch_gradient(model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
                   batch: Tensor, stop: bool = False) -> tuple[Tensor, bool]:
    """The batch's mean loss L, with ∇L left in every parameter's ``.grad`` (summed over the ranks).

    ``batch`` holds the indices of the whole batch, the same on every rank. Each rank back-propagates
    (b_r / B)·L_r of its part; one all-reduce per dtype sums the weighted losses, the gradients, per
    parameter a count of the ranks whose pass reached it (zero: ``.grad`` stays None), and the ranks
    asking to ``stop`` (Ctrl-C), so that all of them stop before the same step.

    Returns:
        L (a 0-dimensional tensor), and whether any rank asked to stop.
    """
    import torch

    part, weight = part_of(batch)
    optimizer.zero_grad(set_to_none=True)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if len(part):
        loss = loss_fn(model(x[part]), y[part]) * weight
        loss.backward()
    else:  # an epoch's last batch can hold fewer examples than there are ranks
        loss = torch.zeros((), dtype=parameters[0].dtype, device=parameters[0].device)
    counts = torch.tensor([float(stop)] + [float(p.grad is not None) for p in parameters], dtype=loss.dtype,
                          device=loss.device)
    pieces = [loss.detach().reshape(1), counts,
              *((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters)]
    summed: list[Any] = list(pieces)
    for dtype in dict.fromkeys(piece.dtype for piece in pieces):
        members = [i for i, piece in enumerate(pieces) if piece.dtype == dtype]
        flat = distributed.all_reduce_sum(torch.cat([pieces[i] for i in members]), "summing the batch's gradients")
        for i, values in zip(members, flat.split([pieces[i].numel() for i in members])):
            summed[i] = values
    stops, *reached = summed[1].tolist()
    for parameter, gradient, count in zip(parameters, summed[2:], reached):
        parameter.grad = gradient.view_as(parameter) if count > 0 else None
    return summed[0].reshape(()), stops > 0
