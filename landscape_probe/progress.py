"""Progress reports of the measuring commands: ``progress=True`` draws a bar, a callable gets the counts.

Under ``torchrun`` rank 0 alone reports, so there is one bar for the job: it
counts rank 0's share of the work (the ranks get equal shares, so it tracks
the whole job) and its label says so; the other ranks report nothing.

Example:
    >>> seen = []
    >>> with progress_callback(lambda done, total, label: seen.append((done, total, label))) as report:
    ...     report(1, 2, "slicing")
    >>> seen
    [(1, 2, 'slicing')]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)``."""


@contextlib.contextmanager
def progress_callback(progress: bool | Progress) -> Iterator[Progress | None]:
    """``progress`` as a callback: the callable itself, a transient rich bar for True, or None.

    Under ``torchrun``: None on every rank but 0, whose labels end with ``(rank 0's share of N ranks)``.
    """
    from landscape_probe import distributed

    if not distributed.launched():
        with _callback(progress) as report:
            yield report
        return
    with _callback(progress if distributed.is_main() else False) as report:
        suffix = f" (rank 0's share of {distributed.world_size()} ranks)"
        yield None if report is None else lambda done, total, label: report(done, total, label + suffix)


@contextlib.contextmanager
def _callback(progress: bool | Progress) -> Iterator[Progress | None]:
    if callable(progress) or not progress:
        yield progress or None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Bar(*columns, TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("working", total=None)

        def advance(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield advance


class PointCounter:
    """Counts evaluated points for a progress callback: ``advance`` after a point, ``note`` to relabel."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def advance(self, label: str, count: int = 1) -> None:
        """``count`` more points of ``label`` done (a layer with no sweep counts all its points at once)."""
        self.done += count
        self.note(label)

    def note(self, label: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, label)
