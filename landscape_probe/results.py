"""Results files of any kind, read back as the result object that wrote them.

Example:
    >>> import landscape_probe as lp
    >>> result = lp.load("mlp16_digits_slice.h5")  # doctest: +SKIP
    >>> result.relative_gradient_change, result.summary()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from rich.console import Console

KINDS = ("slice", "train", "interpolation", "plane", "hessian")
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
    """Read any results file as the result object of its command.

    A ``SliceResult`` (``probe slice``), ``TrainResult`` (``probe train``),
    ``InterpolationResult`` (``probe interpolate``), ``PlaneResult`` (``probe plane``)
    or ``HessianResult`` (``probe hessian``).

    Raises:
        ProbeError: as :func:`results_kind`.
    """
    return _kind_table()[results_kind(path)].load(path)


def draw(path: Path | str, out_dir: Path | str, formats: tuple[str, ...]) -> list[Path]:
    """Draw every figure of a results file of any kind into ``out_dir``; returns the files written."""
    from landscape_probe.landscape.hessian_report import draw_hessian
    from landscape_probe.landscape.plots import draw_interpolation, draw_plane
    from landscape_probe.slicing.plots import draw as draw_slice
    from landscape_probe.training.plots import draw as draw_train

    drawers = {"slice": draw_slice, "train": draw_train, "interpolation": draw_interpolation, "plane": draw_plane,
               "hessian": draw_hessian}
    return drawers[results_kind(path)](Path(path), Path(out_dir), formats)


def print_summary(path: Path | str, console: Console) -> None:
    """Print the summary of a results file of any kind (what ``probe show`` prints)."""
    from landscape_probe.landscape.hessian_report import print_hessian_file
    from landscape_probe.landscape.summary import print_interpolation_file, print_plane_file
    from landscape_probe.slicing.summary import print_summary as print_slice
    from landscape_probe.training.summary import print_summary as print_train

    printers = {"slice": print_slice, "train": print_train, "interpolation": print_interpolation_file,
                "plane": print_plane_file, "hessian": print_hessian_file}
    printers[results_kind(path)](Path(path), console)


def _kind_table() -> dict[str, type]:
    from landscape_probe.landscape.hessian_result import HessianResult
    from landscape_probe.landscape.interpolation import InterpolationResult
    from landscape_probe.landscape.plane_result import PlaneResult
    from landscape_probe.slicing.result import SliceResult
    from landscape_probe.training.result import TrainResult

    return {"slice": SliceResult, "train": TrainResult, "interpolation": InterpolationResult, "plane": PlaneResult,
            "hessian": HessianResult}
