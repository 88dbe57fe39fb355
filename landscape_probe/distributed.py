"""Running under ``torchrun``: the process group, each rank's share of the work, and putting the shares together.

``torchrun --nproc_per_node N -m landscape_probe plane ...`` (or a user's own
script calling ``lp.plane`` under ``torchrun``) starts N processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`process_group` joins
them with Gloo on CPUs and NCCL on GPUs (each rank on GPU ``LOCAL_RANK``,
:func:`landscape_probe.devices.resolve_device`), unless the user's script has
already done so, with a timeout on every collective (``PROBE_DIST_TIMEOUT``
seconds, default 600): a rank that dies makes the others fail with a message
instead of hanging. Work is split by :func:`share` (item i goes to rank
i mod N), and :func:`gather` (:func:`gather_rows` for rows of arrays,
:func:`gather_items` for a dict's items) brings every rank's part to all of
them; a probe set split across ranks (``--shard data``,
:mod:`landscape_probe.data_shard`), or a training batch (``probe train --shard data``,
:mod:`landscape_probe.training.data_parallel`), has its sums added by :func:`all_reduce_sum`.
Only rank 0 opens the results file (:func:`is_main`). Without ``torchrun``
every function here is the single-process identity: one rank, all the work.

Commands that split their work so far: :data:`SPLIT_COMMANDS`. The others are
refused under ``torchrun`` in one sentence rather than run N times over. A
collective that fails (another rank died, or the timeout passed) raises one
:class:`~landscape_probe.errors.ProbeError` sentence on the ranks still alive.

Example:
    >>> world_size(), rank(), share(list(range(5)))
    (1, 0, [0, 1, 2, 3, 4])
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from landscape_probe.errors import ProbeError

SPLIT_COMMANDS = ("plane", "slice", "hessian", "train", "interpolate")
"""The ``probe`` commands that divide their work among ``torchrun`` ranks."""


def world_size() -> int:
    """How many processes ``torchrun`` started (1 without it)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def rank() -> int:
    """This process's rank (0 without ``torchrun``)."""
    return int(os.environ.get("RANK", "0") or 0) if world_size() > 1 else 0


def launched() -> bool:
    """True under ``torchrun`` with more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """True on the rank that writes results files, prints and draws (rank 0)."""
    return rank() == 0


def check_command(command: str | None) -> None:
    """Refuse, under ``torchrun``, a command that would only repeat its whole work on every rank.

    Raises:
        ProbeError: naming the commands that do split their work.
    """
    if launched() and command is not None and command not in SPLIT_COMMANDS:
        raise ProbeError(f"probe {command} does not split its work among torchrun's ranks yet (only "
                         f"{', '.join(SPLIT_COMMANDS)} do); run it as one process, without torchrun.")


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join the ranks for the duration of the block (nothing happens without ``torchrun``).

    Uses the process group a user's script already started, if any, and leaves it to them;
    otherwise starts one (NCCL for a CUDA device, with this rank's own GPU made the current one, else Gloo)
    and ends it afterwards.
    """
    if not launched():
        yield
        return
    import torch
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        gpu = device != "cpu" and torch.cuda.is_available()
        if gpu:  # NCCL's object collectives put their bytes on the current GPU, which is 0 unless set
            from landscape_probe.devices import resolve_device

            torch.cuda.set_device(resolve_device(device))
        dist.init_process_group("nccl" if gpu else "gloo", timeout=timedelta(seconds=timeout_s()))
    try:
        yield
        if created:  # no rank leaves while another may still be exchanging its last results with it
            with exchanging("finishing"):
                dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()


def share(items: list[Any]) -> list[Any]:
    """This rank's items: every ``world_size()``-th, starting at its rank."""
    return items[rank()::world_size()]


def contiguous_part(items: Any) -> Any:
    """This rank's contiguous part of a tensor's rows (``tensor_split``: the first ``len % world_size()`` ranks
    get one row more), for ``--shard data``'s division of a probe set or of a training batch."""
    return items.tensor_split(world_size())[rank()]


def check_shard(shard: str) -> None:
    """Refuse a ``--shard`` that is neither ``work`` (points, layers, cells or runs) nor ``data`` (the probe set).

    Raises:
        ProbeError: for any other value.
    """
    if shard not in SHARDS:
        raise ProbeError(f"Unknown --shard '{shard}'; use one of {', '.join(SHARDS)}.")


SHARDS = ("work", "data")
"""``--shard work`` divides points, layers, cells or runs among ranks; ``--shard data`` divides the probe set."""


@contextlib.contextmanager
def exchanging(what: str) -> Iterator[None]:
    """A failed collective (or store operation) as one sentence: another rank died or stopped answering in time."""
    try:
        yield
    except RuntimeError as err:  # Gloo and NCCL report a lost peer or a timeout as RuntimeError (DistError)
        # Gloo's message: "[file.cc:553] Connection closed by peer [host]:port. This is typically ... GLHF!"
        first = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(err).split())).split(". ")[0].rstrip(".")
        raise ProbeError(f"Rank {rank()} of {world_size()} lost the other ranks while {what} (one failed, was "
                         f"killed, or took longer than PROBE_DIST_TIMEOUT={timeout_s():g} s: "
                         f"{first or type(err).__name__}); "
                         "nothing more is written.") from None


def timeout_s() -> float:
    """``PROBE_DIST_TIMEOUT``: how many seconds a rank waits for the others before it counts them lost."""
    return float(os.environ.get("PROBE_DIST_TIMEOUT", "600"))


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` without ``torchrun``)."""
    if not launched():
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * world_size()
    with exchanging("gathering results"):
        dist.all_gather_object(values, value)
    return values


def gather_rows(indices: list[int], rows: dict[str, Any], count: int) -> dict[str, Any]:
    """Rows ``indices`` (this rank's :func:`share` of ``range(count)``) of flat arrays, put together in order.

    Each array holds one row of equal width per index, flattened (width 1: one number per index); every
    rank gets the whole flat arrays, each row from the one rank that computed it.

    Example:
        >>> import numpy as np
        >>> gather_rows([0, 1], {"loss": np.array([3.0, 4.0]), "pairs": np.arange(4.0)}, 2)["pairs"].tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    import numpy as np

    whole: dict[str, Any] = {}
    for where, part in gather((indices, rows)):
        for key, values in part.items():
            if not where:
                continue
            values = np.asarray(values).reshape(len(where), -1)
            if key not in whole:
                whole[key] = np.empty((count, values.shape[1]), dtype=values.dtype)
            whole[key][where] = values
    return {key: values.reshape(-1) for key, values in whole.items()}


def gather_items(part: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Every rank's ``part`` of a dict (its :func:`share` of the keys ``order``), whole and in that order."""
    whole: dict[str, Any] = {}
    for each in gather(part):
        whole.update(each)
    return {key: whole[key] for key in order}


def all_reduce_sum(tensor: Any, what: str = "summing over the probe set's shards") -> Any:
    """``tensor`` summed over the ranks, in place, on every rank (itself without ``torchrun``).

    ``what`` names the sum in the sentence raised when another rank is lost.
    """
    if not launched():
        return tensor
    import torch.distributed as dist

    with exchanging(what):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (for what only rank 0 may read, such as a results file to resume)."""
    if not launched():
        return value
    import torch.distributed as dist

    box = [value if is_main() else None]
    with exchanging("waiting for rank 0"):
        dist.broadcast_object_list(box, src=0)
    return box[0]
