"""Output folders: refuse, before any work, one that cannot be made; make it only when something goes in.

Example:
    >>> check_folder(Path("/proc/version"), "--plots")
    Traceback (most recent call last):
    ...
    landscape_probe.errors.ProbeError: --plots '/proc/version' is a file, not a folder; name a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from landscape_probe.errors import ProbeError


def check_folder(path: Path | str, option: str) -> None:
    """Refuse a folder that cannot be used for output: an existing file, or under one, or not writable.

    Nothing is created: a folder that does not exist yet is fine when it could be made.

    Args:
        path: the folder.
        option: how the user named it, for the message (e.g. ``--plots``).

    Raises:
        ProbeError: one sentence saying what is wrong.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ProbeError(f"{option} '{path}' is a file, not a folder; name a folder.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ProbeError(f"{option} '{path}' cannot be made: '{existing}' is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ProbeError(f"{option} '{path}' cannot be written: the folder '{existing}' is not writable.")
