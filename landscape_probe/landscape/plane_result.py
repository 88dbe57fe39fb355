"""A plane's results, declared once: these fields are the ``probe plane`` file format.

The grid is W + a·d₁ + b·d₂ with a = ``x_coordinates[j]`` and b =
``y_coordinates[i]`` at cell ``[i, j]`` (rows follow y, columns follow x, as
an image or ``matplotlib.contour(x, y, Z)`` reads them). Cells not yet
evaluated (an interrupted plane, ``complete`` False) hold NaN and are False in
``done``; ``probe plane --resume`` fills them.

Root attributes: :func:`~landscape_probe.hdf5.provenance`, ``kind = "plane"``,
``complete``, ``architecture``, ``data``, and the settings ``direction_x``,
``direction_y``, ``measure``, ``threshold``, ``select``, ``include_1d``,
``split``, ``dtype``, ``probe_size``, ``seed``, ``trajectory`` (the run folder whose principal
plane this is, or ""), plus ``loss`` and ``classification``.

Example:
    >>> result = PlaneResult.load("model_plane.h5")  # doctest: +SKIP
    >>> result.loss[result.y_coordinates == 0, :]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.landscape.result_file import ResultFile
from landscape_probe.layout import LOSS, quantities, quantity

if TYPE_CHECKING:
    import pandas

DIRECTIONS = ("random", "gradient")
"""Directions a plane takes by name, besides ``hessian:K`` / ``hessian:FILE.h5:K``; a ``--trajectory`` plane's are ``pca``."""
MEASURES = ("loss", "gradient")
SETTINGS = ("direction_x", "direction_y", "measure", "threshold", "select", "include_1d", "split", "dtype",
            "probe_size", "seed", "trajectory")
YX = "(Y, X)"


@dataclass(kw_only=True)
class PlaneResult(ResultFile):
    """The grid, what was measured at every cell, and the two directions' sizes.

    Attributes:
        settings: the options that shaped the plane (see the module docstring).
        loss_name, classification: the loss measured, and whether the targets are classes.
        complete: every cell evaluated.
        provenance: the other root attributes (command line, checkpoint and its sha256, data, ...).
        path: the results file it was saved to or loaded from (None until then).
    """

    x_coordinates: np.ndarray = quantity("a, the coefficient of direction d₁ (columns)", units="1", shape="(X,)")
    y_coordinates: np.ndarray = quantity("b, the coefficient of direction d₂ (rows)", units="1", shape="(Y,)")
    loss: np.ndarray = quantity("mean probe-set loss at W + a·d₁ + b·d₂", units=LOSS, shape=YX)
    accuracy: np.ndarray | None = quantity("fraction of probe examples classified correctly (classification only)",
                                           units="1", shape=YX, optional=True)
    relative_function_change: np.ndarray = quantity(
        "||F(a, b) − F(0, 0)||_F / ||F(0, 0)||_F over the probe set's outputs", units="1", shape=YX)
    relative_gradient_change: np.ndarray | None = quantity(
        "||g(a, b) − g(0, 0)|| / ||g(0, 0)|| over the moved layers (measure gradient only)",
        units="1", shape=YX, optional=True)
    drt_prediction: np.ndarray | None = quantity(
        "deep relative trust at the cell's step Δ = a·d₁ + b·d₂: Π_l (1 + ||Δ_l||_F / ||W_l||_F) − 1 "
        "(measure gradient only)", units="1", shape=YX, optional=True)
    euclidean_gradient_prediction: np.ndarray | None = quantity(
        "Euclidean trust at the cell's step: |λ_max|·||Δ|| / ||g(0, 0)|| (measure gradient only)",
        units="1", shape=YX, optional=True)
    done: np.ndarray = quantity("the cell has been evaluated", units="", shape=YX)
    layer_names: list[str] = quantity("the parameters that move", units="", shape="(L,)")
    direction_norms: np.ndarray = quantity("||d₁|| and ||d₂|| after filter normalisation", units="1", shape="(2,)")
    direction_cosine: float = quantity("cosine between d₁ and d₂", units="1", shape="()")
    loss_at_zero: float = quantity("mean probe-set loss at W", units=LOSS, shape="()")
    gradient_norm: float = quantity("||g(W)|| over the moved layers", units=LOSS, shape="()")
    lambda_max: float | None = quantity("Hessian eigenvalue of largest magnitude at W (measure gradient only)",
                                        units=LOSS, shape="()", optional=True)
    trajectory_steps: np.ndarray | None = quantity(
        "the steps of the saved weights of the trajectory (--trajectory only)", units="", shape="(T,)", optional=True)
    trajectory_coordinates: np.ndarray | None = quantity(
        "(a, b) of each saved W_t: (W_t − W)·d₁ and (W_t − W)·d₂ (--trajectory only)", units="1", shape="(T, 2)",
        optional=True)
    trajectory_residual: np.ndarray | None = quantity(
        "||W_t − W − a·d₁ − b·d₂||, how far W_t lies off the plane (--trajectory only)", units="1", shape="(T,)",
        optional=True)
    explained_variance_ratio: np.ndarray | None = quantity(
        "share of the trajectory's variance along d₁ and d₂ (--trajectory only)", units="1", shape="(2,)",
        optional=True)
    settings: dict[str, Any]
    loss_name: str
    classification: bool
    complete: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    KIND: ClassVar[str] = "plane"
    NOUN: ClassVar[str] = "a plane"
    SETTINGS: ClassVar[tuple[str, ...]] = SETTINGS
    ROOT_FLAGS: ClassVar[tuple[str, ...]] = ("complete",)

    @classmethod
    def _typed(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {"done": np.asarray(values["done"], dtype=bool)}

    @staticmethod
    def _drawer() -> Callable[[Path, Path, tuple[str, ...]], list[Path]]:
        from landscape_probe.landscape.plots import draw_plane

        return draw_plane

    def summary(self, width: int = 100) -> str:
        """The text ``probe show`` prints for this result, without colour or markup."""
        from landscape_probe.landscape.summary import plane_text

        return plane_text(self, width=width)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per cell (index ``(y, x)``), one column per (Y, X) quantity; the scalars in ``attrs``.

        Raises:
            ProbeError: when pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ProbeError("to_pandas needs pandas; install it with 'pip install pandas'.") from None
        index = pandas.MultiIndex.from_product([self.y_coordinates, self.x_coordinates], names=["y", "x"])
        columns = {q.name: np.asarray(getattr(self, q.name)).ravel() for q in quantities(type(self))
                   if q.shape == YX and getattr(self, q.name) is not None}
        frame = pandas.DataFrame(columns, index=index)
        frame.attrs.update({q.name: getattr(self, q.name) for q in quantities(type(self)) if q.shape == "()"})
        return frame
