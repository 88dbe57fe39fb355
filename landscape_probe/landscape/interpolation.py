"""An interpolation's results, declared once: these fields are the ``probe interpolate`` file format.

Along the straight line W(α) = (1 − α)·W_A + α·W_B between two checkpoints of
the same architecture (every floating-point parameter and buffer; α = 0 is A
and α = 1 is B, exactly), the probe-set loss, accuracy and relative function
change ||F(α) − F(0)|| / ||F(0)||, beside the size of the whole step A → B:
per layer κ_l = ||W_B,l − W_A,l||_F / ||W_A,l||_F, and deep relative trust's
Π_l (1 + κ_l) − 1 over the layers (DESIGN.md §2–§4). The barrier height is
the largest loss at 0 ≤ α ≤ 1 minus the larger of the two end losses (0 when
the path never rises above its higher end; Frankle et al. 2020's "error
barrier" is the same on the error).

Root attributes: :func:`~landscape_probe.hdf5.provenance` (its
``checkpoint_path`` and ``checkpoint_sha256`` are A's), ``kind =
"interpolation"``, ``other_checkpoint_path`` and ``other_checkpoint_sha256``
(B's), ``architecture``, ``data``, ``split``, ``probe_size``, ``dtype``,
``loss`` and ``classification``. Datasets: the quantities below, at the root.

Example:
    >>> result = InterpolationResult.load("a_to_b_interpolation.h5")  # doctest: +SKIP
    >>> result.alphas, result.loss, result.barrier_height  # doctest: +SKIP
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

SETTINGS = ("probe_size", "split", "dtype")
"""Root attributes that hold the settings (besides ``loss`` and ``classification``)."""


@dataclass(kw_only=True)
class InterpolationResult(ResultFile):
    """The line between two checkpoints, and what was measured along it.

    Attributes:
        settings: ``probe_size`` (the number used), ``split`` and ``dtype``.
        loss_name, classification: the loss measured, and whether the targets are classes.
        provenance: the other root attributes (command line, both checkpoints and their sha256, data, ...).
        path: the results file it was saved to or loaded from (None until then).
    """

    alphas: np.ndarray = quantity("position α on the line W(α) = (1 − α)·W_A + α·W_B", units="1", shape="(P,)")
    loss: np.ndarray = quantity("mean probe-set loss at W(α)", units=LOSS, shape="(P,)")
    accuracy: np.ndarray | None = quantity(
        "fraction of probe examples classified correctly at W(α) (classification only)",
        units="1", shape="(P,)", optional=True,
    )
    relative_function_change: np.ndarray = quantity(
        "||F(α) − F(0)||_F / ||F(0)||_F over the probe set's outputs", units="1", shape="(P,)"
    )
    drt_prediction: np.ndarray = quantity(
        "deep relative trust's relative function change at α, Π_l (1 + |α|·κ_l) − 1", units="1", shape="(P,)"
    )
    layer_names: list[str] = quantity("the layers (parameters with ndim ≥ 2) that κ and DRT run over",
                                      units="", shape="(L,)")
    kappa: np.ndarray = quantity("κ_l = ||W_B,l − W_A,l||_F / ||W_A,l||_F, the relative step of each layer",
                                 units="1", shape="(L,)")
    drt_step: float = quantity("deep relative trust of the whole step, Π_l (1 + κ_l) − 1", units="1", shape="()")
    step_norm: float = quantity("||W_B − W_A|| over all interpolated tensors", units="1", shape="()")
    loss_a: float = quantity("loss at α = 0 (checkpoint A)", units=LOSS, shape="()")
    loss_b: float = quantity("loss at α = 1 (checkpoint B)", units=LOSS, shape="()")
    barrier_height: float = quantity(
        "max loss over 0 ≤ α ≤ 1 minus max(loss_a, loss_b); 0 when the path never rises above its higher end",
        units=LOSS, shape="()",
    )
    settings: dict[str, Any]
    loss_name: str
    classification: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    KIND: ClassVar[str] = "interpolation"
    NOUN: ClassVar[str] = "an interpolation"
    SETTINGS: ClassVar[tuple[str, ...]] = SETTINGS

    @staticmethod
    def _drawer() -> Callable[[Path, Path, tuple[str, ...]], list[Path]]:
        from landscape_probe.landscape.plots import draw_interpolation

        return draw_interpolation

    def summary(self, width: int = 100) -> str:
        """The text ``probe show`` prints for this result, without colour or markup."""
        from landscape_probe.landscape.summary import interpolation_text

        return interpolation_text(self, width=width)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per α (index ``alpha``); the scalars (``drt_step``, ``barrier_height``, ...) in ``attrs``.

        Raises:
            ProbeError: when pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ProbeError("to_pandas needs pandas; install it with 'pip install pandas'.") from None
        columns = {q.name: getattr(self, q.name) for q in quantities(type(self))
                   if q.shape == "(P,)" and q.name != "alphas" and getattr(self, q.name) is not None}
        frame = pandas.DataFrame(columns, index=pandas.Index(self.alphas, name="alpha"))
        frame.attrs.update({q.name: getattr(self, q.name) for q in quantities(type(self)) if q.shape == "()"})
        return frame


def barrier_height(alphas: np.ndarray, loss: np.ndarray) -> float:
    """Largest loss at 0 ≤ α ≤ 1 minus the larger end loss (α = 0 and α = 1 must be among ``alphas``)."""
    on_path = (alphas >= 0) & (alphas <= 1)
    ends = max(float(loss[alphas == 0][0]), float(loss[alphas == 1][0]))
    return max(float(np.max(loss[on_path])) - ends, 0.0)
