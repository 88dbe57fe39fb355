"""Figures, drawn from results files only, so that a user can redraw them later.

Each kind of results file has its figures in its feature package (``slicing/plots.py``,
``training/plots.py``), each with ``draw(results_path, out_dir, formats) -> list[Path]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")


def parse_formats(text: str) -> tuple[str, ...]:
    """Read ``png,svg`` into ``("png", "svg")``, refusing unknown formats."""
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ProbeError(f"Unknown plot format '{','.join(unknown) or text}'; use any of {', '.join(FORMATS)}.")
    return formats


def new_figure(figsize: tuple[float, float], layout: str | None = None) -> Figure:
    """A figure of its own, drawn for files: not in pyplot's registry, and no backend chosen or switched.

    Library code that only writes files need not touch pyplot's global state: a
    user's notebook keeps its backend and its open figures, and nothing is left
    to close (the figure goes when its last reference does). Saving picks the
    Agg canvas for raster formats by itself.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], layout: str | None = None,
             **options: Any) -> tuple[Figure, Any]:
    """``pyplot.subplots`` on a :func:`new_figure`: the figure and its axes (``options`` as ``Figure.subplots``)."""
    figure = new_figure(figsize, layout)
    return figure, figure.subplots(nrows, ncols, **options)


def save_figures(figures: dict[str, Figure], out_dir: Path, formats: tuple[str, ...], prefix: str = "") -> list[Path]:
    """Write each figure as ``out_dir/<prefix><name>.<format>`` in every format, close them, and list the files.

    Each file is written to a temporary name and renamed when complete
    (:func:`~landscape_probe.atomic.atomic_path`), so a failure (a full disk)
    leaves no half-written figure, only those already complete; every figure
    is closed either way.

    Raises:
        ProbeError: when a file cannot be written (full disk, unwritable folder).
    """
    import sys

    from landscape_probe.atomic import atomic_path

    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, figure in figures.items():
            bbox = _lay_out(figure)
            for fmt in formats:
                path = out_dir / f"{prefix}{name}.{fmt}"
                with atomic_path(path) as tmp:
                    figure.savefig(tmp, format=fmt, dpi=130, bbox_inches=bbox)
                written.append(path)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        for figure in figures.values() if pyplot is not None else ():
            pyplot.close(figure)  # a figure made with pyplot leaves its registry; for any other this does nothing
    return written


def _lay_out(figure: Figure) -> str | None:
    """Run a figure's layout engine once and fix the result (None: save as it is); ``"tight"`` without one.

    ``bbox_inches="tight"`` draws a figure twice (once to measure, once to
    save), and so does saving with a layout engine set (matplotlib draws once
    to run it); running the engine here and then removing it leaves one draw
    per saved file, in every format.
    """
    engine = figure.get_layout_engine()
    if engine is None:
        return "tight"
    engine.execute(figure)
    figure.set_layout_engine(None)
    return None
