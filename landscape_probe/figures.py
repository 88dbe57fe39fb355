"""Figures, drawn from results files only, so that a user can redraw them later.

Each kind of results file has its figures in its feature package (``slicing/plots.py``,
``training/plots.py``), each with ``draw(results_path, out_dir, formats) -> list[Path]``.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
DPI = 100
"""Resolution of raster figures: matplotlib's own default, sharp on a screen (svg and pdf are vectors)."""


def parse_formats(text: str) -> tuple[str, ...]:
    """Read ``png,svg`` into ``("png", "svg")``, refusing unknown formats."""
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ProbeError(f"Unknown plot format '{','.join(unknown) or text}'; use any of {', '.join(FORMATS)}.")
    return formats


def prefetch() -> None:
    """Import matplotlib and load its fonts in a background thread, while the command measures.

    A command that will draw its figures calls this before its work, so that
    the 0.5 s matplotlib takes to import and find its fonts is not spent inside
    the drawing: the figures' share of a small ``probe slice --layers`` fell from
    26 % to 17 % (``benchmarks/plots_share.py``). The process as a whole was not
    faster on that sample (5.28 s either way): the import still holds the
    interpreter lock while it runs. Drawing needs nothing from the thread: an
    import it has not finished is finished by the importer.
    """
    import threading

    def load() -> None:
        try:
            import matplotlib.backends.backend_agg  # noqa: F401 - the canvas that saves PNG files
            import matplotlib.figure  # noqa: F401
            from matplotlib import font_manager

            font_manager.findfont("DejaVu Sans")
        except Exception:  # noqa: BLE001 - a prefetch that fails leaves the drawing to import (and report) it
            pass

    threading.Thread(target=load, name="landscape_probe-prefetch", daemon=True).start()


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure of its own, drawn for files: not in pyplot's registry, and no backend chosen or switched.

    Library code that only writes files need not touch pyplot's global state: a
    user's notebook keeps its backend and its open figures, and nothing is left
    to close (the figure goes when its last reference does). Saving picks the
    Agg canvas for raster formats by itself.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """``pyplot.subplots`` on a :func:`new_figure`: the figure and its axes (``options`` as ``Figure.subplots``)."""
    figure = new_figure(figsize)
    return figure, figure.subplots(nrows, ncols, **options)


CHARACTER_WIDTH = 0.6
"""A character's width in em, a little above DejaVu Sans's average (0.55): margins sized by it do not clip."""
_MARGINS_FIXED: weakref.WeakSet = weakref.WeakSet()


def text_width(text: str, fontsize: float) -> float:
    """About how many inches the longest line of ``text`` takes at ``fontsize`` points (no text is laid out)."""
    longest = max((len(line) for line in str(text).split("\n")), default=0)
    return longest * CHARACTER_WIDTH * fontsize / 72


def fix_margins(figure: Figure, *, left: float, right: float, top: float, bottom: float,
                gap: float | None = None) -> None:
    """Place a figure's subplots with margins (and the gap between columns) given in inches.

    Margins sized from the text they must hold (:func:`text_width`) make a
    layout engine unnecessary: constrained layout measures every label by
    drawing it, which took a third of the time of drawing a slice's figures.
    :func:`save_figures` then saves the figure as placed, drawing it once.
    """
    width, height = figure.get_size_inches()
    spacing = {}
    if gap is not None:
        columns = max(axes.get_subplotspec().get_gridspec().ncols for axes in figure.axes if axes.get_subplotspec())
        panel = (width - left - right - gap * (columns - 1)) / columns
        spacing["wspace"] = gap / panel
    figure.set_layout_engine(None)
    figure.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                           bottom=bottom / height, **spacing)
    _MARGINS_FIXED.add(figure)


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
                    figure.savefig(tmp, format=fmt, dpi=DPI, bbox_inches=bbox)
                written.append(path)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        for figure in figures.values() if pyplot is not None else ():
            pyplot.close(figure)  # a figure made with pyplot leaves its registry; for any other this does nothing
    return written


def _lay_out(figure: Figure) -> str | None:
    """Run a figure's layout engine once and fix the result (None: save as it is); ``"tight"`` without one.

    A figure placed by :func:`fix_margins` is saved as it is.

    ``bbox_inches="tight"`` draws a figure twice (once to measure, once to
    save), and so does saving with a layout engine set (matplotlib draws once
    to run it); running the engine here and then removing it leaves one draw
    per saved file, in every format.
    """
    engine = figure.get_layout_engine()
    if engine is None:
        return None if figure in _MARGINS_FIXED else "tight"
    engine.execute(figure)
    figure.set_layout_engine(None)
    return None
