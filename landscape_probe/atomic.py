"""Atomic file replacement: a file appears under its final name complete, or not at all.

The content is written to a temporary file in the same folder (so the final
``os.replace`` is a rename on one file system, atomic on POSIX and Windows).
Any exception, Ctrl-C included, removes the temporary file and leaves whatever
was under the final name untouched.

Example:
    >>> with atomic_path(Path("model.pt")) as tmp:   # doctest: +SKIP
    ...     torch.save(state, tmp)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from landscape_probe.errors import ProbeError


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    Args:
        path: the final file name. Its folder must exist.

    Raises:
        ProbeError: if the folder is missing or not writable.
    """
    final = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except FileNotFoundError:
        raise ProbeError(f"Cannot write '{final}': the folder '{final.parent}' does not exist.") from None
    except PermissionError:
        raise ProbeError(f"Cannot write '{final}': the folder '{final.parent}' is not writable.") from None
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(final))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _file_mode(path: Path) -> int:
    """The mode the file would get from a plain ``open``: the old file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
