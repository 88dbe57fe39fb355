"""Running under ``torchrun``: the process group, each rank's share of the work, and putting the shares together.

``torchrun --nproc_per_node N -m landscape_probe plane ...`` (or a user's own
script calling ``lp.plane`` under ``torchrun``) starts N processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`process_group` joins
them with Gloo on CPUs and NCCL on GPUs (each rank on GPU ``LOCAL_RANK``,
:func:`landscape_probe.devices.resolve_device`), unless the user's script has
already done so, with a timeout on every collective (``PROBE_DIST_TIMEOUT``
seconds, default 600): a rank that dies makes the others fail with a message
instead of hanging. Work is split by :func:`share` (item i goes to rank
i mod N), and :func:`gather` brings every rank's part to all of them; only rank
0 opens the results file (:func:`is_main`). Without ``torchrun`` every
function here is the single-process identity: one rank, all the work.

Commands that split their work so far: :data:`SPLIT_COMMANDS`. The others are
refused under ``torchrun`` in one sentence rather than run N times over.

Example:
    >>> world_size(), rank(), share(list(range(5)))
    (1, 0, [0, 1, 2, 3, 4])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from landscape_probe.errors import ProbeError

SPLIT_COMMANDS = ("plane",)
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
                         f"{', '.join(SPLIT_COMMANDS)} does); run it as one process, without torchrun.")


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join the ranks for the duration of the block (nothing happens without ``torchrun``).

    Uses the process group a user's script already started, if any, and leaves it to them;
    otherwise starts one (NCCL for a CUDA device, else Gloo) and ends it afterwards.
    """
    if not launched():
        yield
        return
    import torch
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        gpu = device != "cpu" and torch.cuda.is_available()
        seconds = float(os.environ.get("PROBE_DIST_TIMEOUT", "600"))
        dist.init_process_group("nccl" if gpu else "gloo", timeout=timedelta(seconds=seconds))
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


def share(items: list[Any]) -> list[Any]:
    """This rank's items: every ``world_size()``-th, starting at its rank."""
    return items[rank()::world_size()]


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` without ``torchrun``)."""
    if not launched():
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (for what only rank 0 may read, such as a results file to resume)."""
    if not launched():
        return value
    import torch.distributed as dist

    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
