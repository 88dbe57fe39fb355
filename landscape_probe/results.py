"""Results files of any kind, read back as the result object that wrote them.

Example:
    >>> import landscape_probe as lp
    >>> result = lp.load("mlp16_digits_slice.h5")  # doctest: +SKIP
    >>> result.relative_gradient_change, result.summary()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landscape_probe.errors import ProbeError

KINDS = ("slice", "train")
"""The kinds of results file this version reads (the root attribute ``kind``)."""


def results_kind(path: Path | str) -> str:
    """The ``kind`` of a results file.

    Raises:
        ProbeError: for a missing file, a file that is not ours, or a kind this version does not know.
    """
    from landscape_probe.hdf5 import open_results

    with open_results(path) as h5:
        kind = str(h5.attrs["kind"])
    if kind not in KINDS:
        raise ProbeError(
            f"'{path}' holds results of kind '{kind}', which this version cannot read; it knows {', '.join(KINDS)}."
        )
    return kind


def load(path: Path | str) -> Any:
    """Read any results file: a ``SliceResult`` for ``probe slice`` files, a ``TrainResult`` for ``probe train``.

    Raises:
        ProbeError: as :func:`results_kind`.
    """
    from landscape_probe.slicing.result import SliceResult
    from landscape_probe.training.result import TrainResult

    readers = {"slice": SliceResult.load, "train": TrainResult.load}
    return readers[results_kind(path)](path)
