"""A sweep's runs handed to ``torchrun``'s ranks as they free up, through the store that joined them.

A free rank claims the next run no rank has claimed with one atomic ``add`` on the process group's
store (``torch.distributed``'s default store, a key-value server every rank reaches), so a rank that
drew short runs trains more of them; there are no rounds. A rank other than 0 puts each run it
finishes in the store (its model as a state dict on the CPU, :func:`~.run_transfer.packed`), and rank 0
takes it from there, between two of its own steps (at most every :data:`POLL_S` seconds) or while
it waits, and writes it at once.

A rank with no run left waits for the others by polling the store, not in a collective, so
``PROBE_DIST_TIMEOUT`` does not bound how long it waits for a live one. Every rank adds to a
heartbeat counter in the store between two steps (at most every :data:`POLL_S` seconds); a rank
whose counter has not moved for ``PROBE_DIST_TIMEOUT`` seconds, and that has not said it is done,
is lost, and the waiting ranks stop with one sentence. A stop request (Ctrl-C) on any rank is put
in the store too: every rank's next poll sees it, stops its run between two steps (rank 0 saves
it, resumable) and claims no more.

:func:`stop_on_interrupt` turns Ctrl-C into such a request.

Without ``torchrun``, or when every rank trains every run together (``--shard data``), the queue
hands every run, in order, to each process, and each run is recorded as it finishes.

Example:
    >>> queue = RunQueue(3, shared=False, record=print, rebuild=lambda run: run)
    >>> [index for index in queue]
    [0, 1, 2]
"""

from __future__ import annotations

import contextlib
import itertools
import math
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from landscape_probe import distributed
from landscape_probe.errors import ProbeError

POLL_S = 1.0
"""Seconds between two polls of the store by a training rank (its heartbeat, finished runs, a stop)."""

WAIT_S = 0.1
"""Seconds between two polls of the store by a rank waiting for the others."""

_SWEEPS = itertools.count()
"""Each sweep's keys get their own prefix (every rank starts the same sweeps in the same order)."""


class RunQueue:
    """The indices of the runs this rank trains, and the finished runs brought to rank 0.

    Args:
        count: how many runs there are to train.
        shared: whether the runs are divided among the ranks (``torchrun`` with ``--shard work``).
        record: called with each finished run on rank 0 (every rank's runs), or, without ``shared``,
            on every process with its own runs.
        rebuild: turns a run received through the store (:func:`~.run_transfer.packed`) into a run
            with its network (:func:`~.run_transfer.unpacked`).
    """

    def __init__(self, count: int, *, shared: bool, record: Callable[[Any], None],
                 rebuild: Callable[[Any], Any]) -> None:
        self.count, self.record, self.rebuild = count, record, rebuild
        self.store = _sweep_store() if shared else None
        self.rank, self.ranks, self.main = distributed.rank(), distributed.world_size(), distributed.is_main()
        self.mine: list[int] = []
        self.received: set[int] = set()
        self.stopped = False
        self._next_local, self._last_poll = 0, -math.inf

    def __iter__(self) -> Iterator[int]:
        """The next run's index, claimed for this rank, until none is left or a stop is requested."""
        while not self.stopped:
            if self.store is None:
                index, self._next_local = self._next_local, self._next_local + 1
            else:
                with distributed.exchanging("claiming a run"):
                    index = self.store.add("next", 1) - 1
            if index >= self.count:
                return
            self.mine.append(index)
            yield index

    def should_stop(self, local: Callable[[], bool] | None) -> Callable[[], bool]:
        """A run's ``should_stop``: ``local`` (Ctrl-C here) or a stop another rank asked for; it also polls."""
        def check() -> bool:
            if local is not None and local():
                self.stop()
            return self.poll()

        return check

    def poll(self) -> bool:
        """At most every :data:`POLL_S` s: beat, take the finished runs (rank 0), read the stop flag; True: stop."""
        now = time.monotonic()
        if self.store is not None and now - self._last_poll >= POLL_S:
            self._last_poll = now
            with distributed.exchanging("telling the others it is alive"):
                self.store.add(f"beat/{self.rank}", 1)
                self.stopped = self.stopped or self.store.check(["stop"])
            self._take_finished()
        return self.stopped

    def stop(self) -> None:
        """Claim no more runs, and have every rank stop its current one."""
        if self.store is not None and not self.stopped:
            with distributed.exchanging("asking the others to stop"):
                self.store.set("stop", "1")
        self.stopped = True

    def finished(self, index: int, run: Any) -> None:
        """A run this rank has trained: recorded here (rank 0, or not shared), else put in the store for rank 0."""
        if self.store is None or self.main:
            self.record(run)
            return
        from landscape_probe.training.run_transfer import packed

        with distributed.exchanging("sending a run to rank 0"):
            self.store.set(f"run/{index}", pickle.dumps(packed(run)))

    def finish(self) -> None:
        """Wait, polling the store, until every rank is done; rank 0 records their runs as they come.

        Raises:
            ProbeError: a rank not done has not beaten for ``PROBE_DIST_TIMEOUT`` seconds.
        """
        if self.store is None:
            return
        heard: dict[int, tuple[int, float]] = {}  # each running rank's last heartbeat, and when it moved
        with distributed.exchanging("waiting for the others' runs"):
            self.store.set(f"done/{self.rank}", "1")
        while running := self._running():
            self._take_finished()
            now = time.monotonic()
            for other in running:
                with distributed.exchanging("waiting for the others' runs"):
                    beat = self.store.add(f"beat/{other}", 0)
                if heard.get(other, (None,))[0] != beat:
                    heard[other] = (beat, now)
                elif now - heard[other][1] > distributed.timeout_s():
                    raise ProbeError(
                        f"Rank {self.rank} of {self.ranks} lost the other ranks while waiting for their runs "
                        f"(rank {other} failed, was killed, or has not finished a step in "
                        f"PROBE_DIST_TIMEOUT={distributed.timeout_s():g} s); nothing more is written.")
            time.sleep(WAIT_S)
        self._take_finished()  # each rank put its runs in the store before it said it was done

    def _running(self) -> list[int]:
        with distributed.exchanging("waiting for the others' runs"):
            return [other for other in range(self.ranks) if not self.store.check([f"done/{other}"])]

    def _take_finished(self) -> None:
        """Rank 0: record the runs other ranks have put in the store since it last looked."""
        if not self.main or self.store is None:
            return
        arrived = []
        with distributed.exchanging("receiving the others' runs"):
            claimed = min(self.store.add("next", 0), self.count)
            for index in range(claimed):
                key = f"run/{index}"
                if index in self.received or index in self.mine or not self.store.check([key]):
                    continue
                arrived.append(pickle.loads(self.store.get(key)))
                self.store.delete_key(key)
                self.received.add(index)
        for run in arrived:
            self.record(self.rebuild(run))


def _sweep_store() -> Any:
    """The process group's store, with this sweep's own prefix on its keys."""
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import _get_default_store

    return dist.PrefixStore(f"landscape_probe/train/{next(_SWEEPS)}/", _get_default_store())


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a stop request (polled between steps); a second one interrupts at once.

    Yields:
        ``should_stop()``, True once Ctrl-C was pressed. Outside the main thread
        signals cannot be caught and it always returns False.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum: int, frame: object) -> None:
        requested.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
