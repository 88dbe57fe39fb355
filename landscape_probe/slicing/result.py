"""A slice's results, declared once: these fields are the ``probe slice`` file format.

A sweep walks W + t·u for every scale t (all selected layers together, or one
layer alone). :class:`SliceSweep` holds what one sweep measured
(:class:`Measurements`, DESIGN.md §3) and what is set beside it
(:class:`Predictions`, §4). Every field made with
:func:`~landscape_probe.layout.quantity` is an HDF5 dataset of the same name;
every field made with :func:`group_attribute` an attribute of the sweep's
group. :mod:`~landscape_probe.slicing.store` writes and reads the file by
iterating these fields, ``docs/hdf5-format.md`` shows them as a table, and the
summary and plots read them as attributes.

:class:`SliceResult` is what :func:`landscape_probe.slicing.api.slice` returns
and :meth:`SliceResult.load` reads back: the scales, the sweep over all layers,
one sweep per layer with ``layers=True``, the settings and provenance.

Example:
    >>> import torch
    >>> from landscape_probe.slicing.api import slice
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> result = slice(model, (x, y), scales=(0.01, 0.1), device="cpu")
    >>> result.relative_gradient_change.shape, result.whole.kappa.shape
    ((2,), (2, 2))
    >>> result.to_pandas().columns[:3].tolist()
    ['loss', 'accuracy', 'relative_function_change']
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.layout import LOSS, quantities, quantity

if TYPE_CHECKING:
    import pandas

    from landscape_probe.slicing.config import SliceConfig


def group_attribute(meaning: str) -> Any:
    """A dataclass field stored as an attribute of the sweep's HDF5 group (not a dataset)."""
    return field(metadata={"attribute": meaning})


def group_attributes(cls: type) -> dict[str, str]:
    """The group attributes a class declares with :func:`group_attribute`: name → meaning."""
    return {f.name: f.metadata["attribute"] for f in fields(cls) if "attribute" in f.metadata}


P_ = "(P,)"
PL = "(P, L)"


@dataclass(frozen=True, kw_only=True)
class Measurements:
    """What one sweep measured on the probe set: arrays over the P scales, scalars at W (t = 0).

    ``layer_names`` are the perturbed layers, the columns of the (P, L) arrays.
    """

    layer_names: list[str]
    loss: np.ndarray = quantity("mean probe-set loss at W + t·u", units=LOSS, shape=P_)
    accuracy: np.ndarray | None = quantity(
        "fraction of probe examples classified correctly at W + t·u", units="1", shape=P_, optional=True
    )
    relative_function_change: np.ndarray = quantity(
        "||F(t) − F(0)||_F / ||F(0)||_F, F the probe outputs (logits)", units="1", shape=P_
    )
    relative_gradient_change: np.ndarray = quantity(
        "||g(t) − g(0)|| / ||g(0)||, g the loss gradient over the perturbed layers (NaN: measure = loss)", units="1",
        shape=P_,
    )
    relative_gradient_change_per_layer: np.ndarray = quantity(
        "||g_l(t) − g_l(0)|| / ||g_l(0)||; shape [scales, layers] (NaN: measure = loss)", units="1", shape=PL
    )
    kl_divergence: np.ndarray | None = quantity(
        "mean over probe examples of KL(p_0 || p_t) of the predictive distributions",
        units="nats", shape=P_, optional=True,
    )
    step_norm: np.ndarray = quantity("Euclidean norm of the step ||ΔW(t)|| = |t|·||u||", units="1", shape=P_)
    kappa: np.ndarray = quantity(
        "relative perturbation κ_l(t) = ||ΔW_l|| / ||W_l|| in the chosen norm; shape [scales, layers]",
        units="1", shape=PL,
    )
    lambda_max: float = quantity(
        "top Hessian eigenvalue over the perturbed layers (largest |λ|, sign kept), Lanczos (NaN: measure = loss)",
        units=LOSS, shape="()",
    )
    loss_at_zero: float = quantity("mean probe-set loss at W (t = 0)", units=LOSS, shape="()")
    gradient_norm: float = quantity(
        "||g(0)||, the gradient norm over the perturbed layers at W (NaN: measure = loss, but for a gradient "
        "direction)", units=LOSS, shape="()"
    )
    unit_step_norm: float = quantity("||u||, the step at t = 1", units="1", shape="()")
    slope: float = quantity("g(0)·u = dloss/dt at t = 0 (NaN: measure = loss, but for a gradient direction)",
                            units=LOSS, shape="()")
    curvature: float = quantity("uᵀHu = d²loss/dt² at t = 0 (NaN: measure = loss)", units=LOSS, shape="()")
    nonfinite_points: int = group_attribute("points where the loss or a relative change overflowed to inf/NaN")


@dataclass(frozen=True, kw_only=True)
class Predictions:
    """What is set beside one sweep's measurements (see :mod:`landscape_probe.slicing.predictions`).

    ``calibration_constants`` and ``first_divergence`` hold, by calibrated
    dataset name, the fitted constant c and the first positive t where the
    calibrated prediction is off by more than 2× (NaN: never); they are stored
    as those datasets' attributes.
    """

    drt_prediction: np.ndarray = quantity("deep relative trust Π_l (1 + κ_l(t)) − 1", units="1", shape=P_)
    euclidean_gradient_prediction: np.ndarray = quantity(
        "Euclidean trust |λ_max|·||ΔW(t)|| / ||g(0)|| (NaN: measure = loss)", units="1", shape=P_
    )
    quadratic_loss_model: np.ndarray = quantity("loss(0) + t·g·u + ½|λ_max|·t²·||u||² (NaN: measure = loss)", units=LOSS,
                                                  shape=P_)
    taylor_loss_model: np.ndarray = quantity("loss(0) + t·g·u + ½·t²·uᵀHu (NaN: measure = loss)", units=LOSS, shape=P_)
    calibrated_drt_prediction: np.ndarray = quantity(
        "drt_prediction × c, c fitted to relative_gradient_change at the smallest scales (NaN: measure = loss)",
        units="1", shape=P_,
    )
    calibrated_euclidean_gradient_prediction: np.ndarray = quantity(
        "euclidean_gradient_prediction × c, c fitted to relative_gradient_change at the smallest scales "
        "(NaN: measure = loss)",
        units="1", shape=P_,
    )
    calibrated_drt_function_prediction: np.ndarray = quantity(
        "drt_prediction × c, c fitted to relative_function_change at the smallest scales", units="1", shape=P_
    )
    calibrated_euclidean_function_prediction: np.ndarray = quantity(
        "euclidean_gradient_prediction × c (the linear shape), c fitted to relative_function_change; with "
        "measure = loss, step_norm × c (the same shape)",
        units="1", shape=P_,
    )
    breakdown_scale: float = quantity(
        "first positive t where relative_gradient_change reaches 1 (NaN: never, or measure = loss)", units="1",
        shape="()",
    )
    calibration_constants: dict[str, float]
    first_divergence: dict[str, float]
    shape: str = group_attribute("the shape the relative gradient change follows (trust.compare_shapes)")
    verdict: str = group_attribute("one sentence on the relative gradient change against both predictions")
    function_shape: str = group_attribute("the shape the relative function change follows")
    function_verdict: str = group_attribute("one sentence on the relative function change")


CALIBRATED = tuple(q.name for q in quantities(Predictions) if q.name.startswith("calibrated_"))
"""The calibrated predictions, whose datasets carry ``calibration_constant`` and ``first_divergence``."""


@dataclass(frozen=True, kw_only=True)
class SliceSweep(Predictions, Measurements):
    """One sweep: its measurements and predictions, every array one entry per scale (rows of (P, L) arrays)."""

    def to_pandas(self, scales: np.ndarray) -> pandas.DataFrame:
        """One row per scale (index ``scale``): every (P,) quantity, and each (P, L) one as ``name[layer]``.

        The scalars (``lambda_max``, ``breakdown_scale``, ...) are in the frame's ``attrs``.

        Raises:
            ProbeError: when pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ProbeError("to_pandas needs pandas; install it with 'pip install pandas'.") from None
        columns: dict[str, np.ndarray] = {}
        scalars: dict[str, float] = {}
        for q in quantities(type(self)):
            value = getattr(self, q.name)
            if value is None:
                continue
            if q.shape == "()":
                scalars[q.name] = value
            elif q.shape == PL:
                columns.update({f"{q.name}[{layer}]": value[:, i] for i, layer in enumerate(self.layer_names)})
            else:
                columns[q.name] = value
        frame = pandas.DataFrame(columns, index=pandas.Index(scales, name="scale"))
        frame.attrs.update(scalars)
        return frame


SWEEP_FIELDS = frozenset(f.name for f in fields(SliceSweep))


@dataclass(kw_only=True)
class SliceResult:
    """A whole slice: the scales, the sweep over all layers, one sweep per layer alone, settings and provenance.

    The whole sweep's fields are also read on the result itself:
    ``result.relative_gradient_change`` is ``result.whole.relative_gradient_change``.

    Attributes:
        scales, layer_names: the scales t (with ``two_sided``, −t first) and the perturbed layers.
        step_over_breakdown: for an ``optimizer:NAME`` direction, t_step / t_breakdown (None for other directions).
        whole: the sweep perturbing all layers together.
        layers: with ``layers=True``, by layer name, the sweep perturbing that layer alone.
        skipped_layers: with ``layers=True``, the layers (or groups) with no sweep of their own, and why: the
            direction is zero in them (along the gradient: the loss does not depend on them to first order on
            the probe set, e.g. a layer the output does not use, or one behind dead ReLUs).
        config: the settings (read back from a file: ``device`` is the one used).
        loss_name, classification: the loss measured, and whether the targets are classes.
        provenance: the other root attributes of the file (command line, checkpoint and its sha256, data, ...).
        path: the results file it was saved to or loaded from (None until then).
    """

    scales: np.ndarray = quantity("perturbation scale t, ΔW(t) = t·u", units="1", shape=P_)
    layer_names: list[str] = quantity("the perturbed layers", units="", shape="(L,)")
    layer_sizes: np.ndarray | None = quantity(
        "entries of each perturbed layer (absent from files written before it was recorded)", units="", shape="(L,)",
        optional=True,
    )
    step_over_breakdown: float | None = quantity(
        "for an optimizer:NAME direction with no scaling: 1 / breakdown_scale, where the optimiser's actual step "
        "(t = 1) sits relative to the measured breakdown scale; above 1 it steps past its trust region "
        "(NaN: no breakdown up to the largest scale)", units="1", shape="()", optional=True,
    )
    whole: SliceSweep
    layers: dict[str, SliceSweep] = field(default_factory=dict)
    config: SliceConfig
    loss_name: str
    classification: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    skipped_layers: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in SWEEP_FIELDS and "whole" in self.__dict__:
            return getattr(self.whole, name)
        raise AttributeError(f"'SliceResult' object has no attribute '{name}'")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *SWEEP_FIELDS})

    @classmethod
    def load(cls, path: Path | str) -> SliceResult:
        """Read a ``probe slice`` results file (any written since version 0.1.0).

        Raises:
            ProbeError: when the file is missing, not ours, or not a slice.
        """
        from landscape_probe.slicing.store import read_slice

        return read_slice(path)

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write the results file atomically (it appears whole or not at all); remembers ``path``.

        Raises:
            ProbeError: when ``path`` exists without ``overwrite``, or cannot be written.
        """
        from landscape_probe.slicing.store import write_slice

        write_slice(path, self, overwrite=overwrite)
        self.path = Path(path)
        return self.path

    def plot(self, folder: Path | str, formats: Sequence[str] = ("png",)) -> list[Path]:
        """Draw the figures into ``folder``, from the results file (a temporary one while unsaved).

        Returns:
            The files written, ``<results stem>_<figure>.<format>``.
        """
        from landscape_probe.figures import parse_formats
        from landscape_probe.slicing.plots import draw

        chosen = parse_formats(",".join(formats))
        if self.path is not None:
            return draw(self.path, Path(folder), chosen)
        with tempfile.TemporaryDirectory() as scratch:
            unsaved = Path(scratch) / "slice.h5"
            from landscape_probe.slicing.store import write_slice

            write_slice(unsaved, self, overwrite=False)
            return draw(unsaved, Path(folder), chosen)

    def summary(self, width: int = 100) -> str:
        """The text ``probe show`` prints for this result, without colour or markup."""
        from landscape_probe.slicing.summary import summary_text

        return summary_text(self, width=width)

    def to_pandas(self, layer: str | None = None) -> pandas.DataFrame:
        """One row per scale: the whole sweep's columns, or with ``layer`` that layer's sweep alone.

        See :meth:`SliceSweep.to_pandas`.

        Raises:
            ProbeError: when pandas is missing, or for a layer without a sweep of its own.
        """
        if layer is None:
            return self.whole.to_pandas(self.scales)
        if layer not in self.layers:
            known = ", ".join(self.layers) or "none (run with layers=True)"
            raise ProbeError(f"No sweep of layer '{layer}' alone; the per-layer sweeps are: {known}.")
        return self.layers[layer].to_pandas(self.scales)
