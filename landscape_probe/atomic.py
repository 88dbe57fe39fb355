"""Atomic file replacement: a file appears under its final name complete, or not at all.

The content is written to a temporary file in the same folder (so the final
``os.replace`` is a rename on one file system, atomic on POSIX and Windows).
Any exception, Ctrl-C included, removes the temporary file and leaves whatever
was under the final name untouched. A process killed outright (SIGKILL, power
loss) cannot clean up, so temporary names carry the writer's process id,
``.NAME.PID.XXXXXXXX.tmp``, and the next write of the same file removes those
whose process no longer runs. A full disk becomes one sentence
(:class:`~landscape_probe.errors.ProbeError`), with nothing left behind.

Example:
    >>> with atomic_path(Path("model.pt")) as tmp:   # doctest: +SKIP
    ...     torch.save(state, tmp)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from landscape_probe.errors import ProbeError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    Stale temporary files of the same final name, left by processes that are
    no longer running, are removed first.

    Args:
        path: the final file name. Its folder must exist.

    Raises:
        ProbeError: if the folder is missing or not writable, or the disk is full.
    """
    final = Path(path)
    remove_stale_temporaries(final)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    except FileNotFoundError:
        raise ProbeError(f"Cannot write '{final}': the folder '{final.parent}' does not exist.") from None
    except NotADirectoryError:
        raise ProbeError(f"Cannot write '{final}': '{final.parent}' is a file, not a folder.") from None
    except PermissionError:
        raise ProbeError(f"Cannot write '{final}': the folder '{final.parent}' is not writable.") from None
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(final))
        os.replace(tmp, final)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, Exception) and is_disk_full(err):
            raise ProbeError(f"Cannot write '{final}': the disk is full, so nothing was written.") from None
        raise


def is_disk_full(err: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the disk or quota is full; HDF5 reports it only in words."""
    for _ in range(8):  # an exception chain is short; the bound only guards against a cycle
        if err is None:
            return False
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            return True
        if "No space left on device" in str(err) or "Disk quota exceeded" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove ``.NAME.PID.*.tmp`` files beside ``final`` whose writing process no longer runs.

    Returns:
        The paths removed.
    """
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(\d+)\.[A-Za-z0-9_]{{8}}\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for candidate in final.parent.iterdir():
            match = pattern.match(candidate.name)
            if match and not _process_runs(int(match.group(1))):
                with contextlib.suppress(OSError):
                    candidate.unlink()
                    removed.append(candidate)
    return removed


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's process, or a pid we cannot ask about: leave its file alone
    return True


def _file_mode(path: Path) -> int:
    """The mode the file would get from a plain ``open``: the old file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
