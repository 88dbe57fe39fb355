"""Keep freed memory in the process for reuse, instead of handing it back to the kernel at every free (glibc).

glibc's malloc serves a request above its mmap threshold (32 MiB at most) with
fresh pages from ``mmap`` and unmaps them on ``free``. One 4096 × 4096 float32
layer is 64 MiB, so at that size every gradient, Hessian-vector product and
autograd temporary gets new pages, which the kernel zeroes on first touch: on
the 100M-parameter MLP of ``benchmarks/big.py`` the system time of ``probe
slice`` was 80 % of its user time even with the slice's own buffers reused,
because autograd makes its per-layer results afresh. With mmap off for the
heap (``M_MMAP_MAX = 0``) and the heap trimmed only above 2 GiB
(``M_TRIM_THRESHOLD``), freed blocks serve later requests (not every one:
torch's 64-byte-aligned requests ask for a little more than a freed block of
the same tensor size, so about one block per round of allocations is still
new), and the system time fell from 80 % to under 20 % of user time (peak RSS
a little higher: freed memory stays mapped and can fragment). ``probe`` does this at start-up
(:func:`keep_freed_memory`); a Python user can call it too, or set the same
through glibc's environment variables ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=2147483647`` before starting Python.

Left alone: other platforms and C libraries, and a process whose environment
already sets any ``MALLOC_*_`` tuning variable, or ``LANDSCAPE_PROBE_SYSTEM_MALLOC``.

Example:
    >>> isinstance(keep_freed_memory(), bool)
    True
"""

from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1
"""The most ``mallopt`` takes (an int): a free block at the top of the heap is handed back only above 2 GiB."""

OPT_OUT = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LANDSCAPE_PROBE_SYSTEM_MALLOC")


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; True if it was told, False where it was left alone."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in OPT_OUT):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl) or none by that name
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
