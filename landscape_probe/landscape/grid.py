"""Coordinates along one axis of a landscape: ``START:STOP:COUNT`` ranges.

Example:
    >>> parse_range("-0.5:1.5:5").tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
"""

from __future__ import annotations

import numpy as np

from landscape_probe.errors import ProbeError


def parse_range(text: str | tuple[float, float, int], option: str = "--range") -> np.ndarray:
    """``START:STOP:COUNT`` as COUNT evenly spaced values from START to STOP, both included; from Python the
    triple ``(start, stop, count)`` is read the same way.

    Raises:
        ProbeError: for a malformed range, a COUNT below 2, non-finite ends, or START ≥ STOP.
    """
    if isinstance(text, (tuple, list)):
        text = ":".join(str(part) for part in text)
    if not isinstance(text, str):
        raise ProbeError(f"{option} must be START:STOP:COUNT (or, from Python, a triple), not a {type(text).__name__}.")
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ProbeError(f"{option} '{text}' is not START:STOP:COUNT, e.g. -0.5:1.5:41.") from None
    if not (np.isfinite(start) and np.isfinite(stop)) or start >= stop or count < 2:
        raise ProbeError(f"{option} '{text}' needs finite START < STOP and COUNT ≥ 2, e.g. -0.5:1.5:41.")
    return np.linspace(start, stop, count)
