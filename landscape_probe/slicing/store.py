"""The layout of a ``probe slice`` results file: written and read here only.

Root attributes: :func:`~landscape_probe.hdf5.provenance`, ``kind =
"slice"``, the slice settings (``direction``, ``scaling``, ``norm``, ...), and for
the sweep over all layers ``shape``, ``verdict``, ``function_shape``,
``function_verdict`` and ``nonfinite_points``.
Root datasets: ``scales`` and ``layer_names``, then the sweep over all layers
(names in ``SWEEP_DATASETS``, DESIGN.md §3–§4). With ``--layers``, the same
sweep datasets (and attributes) for each layer alone live in the group
``/layers/<parameter name>``. Documented in ``docs/hdf5-format.md``.

Example:
    >>> data = read_slice("mlp16_digits_slice.h5")  # doctest: +SKIP
    >>> data.whole["relative_gradient_change"], data.layers["hidden.0.weight"]["breakdown_scale"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.hdf5 import atomic_h5, open_results, plain_value, read_attrs, read_group, write_dataset

if TYPE_CHECKING:
    import h5py

    from landscape_probe.slicing.engine import SliceResult, Sweep

LOSS_UNITS = "<loss>"
"""Placeholder for the loss's units: nats for cross-entropy, squared target units for MSE."""
PARAMETER_UNITS = "1"

SWEEP_DATASETS: dict[str, tuple[str, str]] = {
    "loss": ("mean probe-set loss at W + t·u", LOSS_UNITS),
    "accuracy": ("fraction of probe examples classified correctly at W + t·u", "1"),
    "relative_function_change": ("||F(t) − F(0)||_F / ||F(0)||_F, F the probe outputs (logits)", "1"),
    "relative_gradient_change": ("||g(t) − g(0)|| / ||g(0)||, g the loss gradient over the perturbed layers", "1"),
    "relative_gradient_change_per_layer": ("||g_l(t) − g_l(0)|| / ||g_l(0)||; shape [scales, layers]", "1"),
    "kl_divergence": ("mean over probe examples of KL(p_0 || p_t) of the predictive distributions", "nats"),
    "step_norm": ("Euclidean norm of the step ||ΔW(t)|| = |t|·||u||", PARAMETER_UNITS),
    "kappa": ("relative perturbation κ_l(t) = ||ΔW_l|| / ||W_l|| in the chosen norm; shape [scales, layers]", "1"),
    "drt_prediction": ("deep relative trust Π_l (1 + κ_l(t)) − 1", "1"),
    "euclidean_gradient_prediction": ("Euclidean trust |λ_max|·||ΔW(t)|| / ||g(0)||", "1"),
    "quadratic_loss_model": ("loss(0) + t·g·u + ½|λ_max|·t²·||u||²", LOSS_UNITS),
    "taylor_loss_model": ("loss(0) + t·g·u + ½·t²·uᵀHu", LOSS_UNITS),
    "calibrated_drt_prediction": (
        "drt_prediction × c, c fitted to relative_gradient_change at the smallest scales",
        "1",
    ),
    "calibrated_euclidean_gradient_prediction": (
        "euclidean_gradient_prediction × c, c fitted to relative_gradient_change at the smallest scales",
        "1",
    ),
    "calibrated_drt_function_prediction": (
        "drt_prediction × c, c fitted to relative_function_change at the smallest scales",
        "1",
    ),
    "calibrated_euclidean_function_prediction": (
        "euclidean_gradient_prediction × c (the linear shape), c fitted to relative_function_change",
        "1",
    ),
}

SWEEP_SCALARS: dict[str, tuple[str, str]] = {
    "lambda_max": (
        "top Hessian eigenvalue over the perturbed layers (largest |λ|, sign kept), power iteration",
        LOSS_UNITS,
    ),
    "loss_at_zero": ("mean probe-set loss at W (t = 0)", LOSS_UNITS),
    "gradient_norm": ("||g(0)||, the gradient norm over the perturbed layers at W", LOSS_UNITS),
    "unit_step_norm": ("||u||, the step at t = 1", PARAMETER_UNITS),
    "slope": ("g(0)·u = dloss/dt at t = 0", LOSS_UNITS),
    "curvature": ("uᵀHu = d²loss/dt² at t = 0", LOSS_UNITS),
    "breakdown_scale": ("first positive t where relative_gradient_change reaches 1 (NaN: never)", "1"),
}

SWEEP_ATTRIBUTES = ("shape", "verdict", "function_shape", "function_verdict")


@dataclass
class SliceData:
    """A slice results file read back: settings and arrays by dataset name."""

    attrs: dict[str, Any]
    scales: np.ndarray
    layer_names: list[str]
    whole: dict[str, Any]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_slice(path: Path | str, result: SliceResult, attrs: dict[str, Any], *, overwrite: bool) -> None:
    """Write ``result`` atomically to ``path``, with ``attrs`` (provenance and more) on the root.

    Raises:
        ProbeError: when ``path`` exists without ``overwrite`` or cannot be written.
    """
    config = result.config
    loss_units = "nats" if result.loss_name == "cross_entropy" else "squared target units"
    settings = {
        "direction": config.direction,
        "scaling": config.resolved_scaling,
        "norm": config.norm,
        "two_sided": config.two_sided,
        "per_layer": config.per_layer,
        "select": config.select or "",
        "include_1d": config.include_1d,
        "probe_size": config.probe_size,
        "loss": result.loss_name,
        "classification": result.classification,
        "dtype": config.dtype,
        "power_iterations": config.power_iterations,
        "power_tolerance": config.power_tolerance,
        "fit_points": config.fit_points,
    }
    root_attrs = {key: str(value) if isinstance(value, str) else value for key, value in {**attrs, **settings}.items()}
    with atomic_h5(path, kind="slice", attrs=root_attrs, overwrite=overwrite) as h5:
        write_dataset(h5, "scales", result.scales, description="perturbation scale t, ΔW(t) = t·u", units="1")
        write_dataset(h5, "layer_names", result.whole.layer_names, description="the perturbed layers", units="")
        _write_sweep(h5, result.whole, loss_units)
        if result.layers:
            group = h5.create_group("layers")
            group.attrs["description"] = "one sweep per layer, perturbing that layer alone"
            for name, sweep in result.layers.items():
                _write_sweep(group.create_group(name), sweep, loss_units)


def read_slice(path: Path | str) -> SliceData:
    """Read a slice results file.

    Raises:
        ProbeError: when the file is missing, not ours, or not of kind ``slice``.
    """
    from landscape_probe.errors import ProbeError

    with open_results(path) as h5:
        if h5.attrs["kind"] != "slice":
            raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not a slice.")
        attrs = read_attrs(h5)
        root = read_group(h5)
        layer_names = [str(name) for name in root["layer_names"]]
        swept = h5["layers"] if "layers" in h5 else {}
        layers = {name: _read_sweep(swept[name]) for name in layer_names if name in swept}
        whole = _read_sweep(h5)
    return SliceData(
        attrs=attrs,
        scales=np.asarray(root["scales"], dtype=np.float64),
        layer_names=layer_names,
        whole=whole,
        layers=layers,
    )


def _write_sweep(group: h5py.Group, sweep: Sweep, loss_units: str) -> None:
    predictions = sweep.predictions
    arrays = {
        "loss": sweep.loss,
        "accuracy": sweep.accuracy,
        "relative_function_change": sweep.relative_function_change,
        "relative_gradient_change": sweep.relative_gradient_change,
        "relative_gradient_change_per_layer": sweep.relative_gradient_change_per_layer,
        "kl_divergence": sweep.kl_divergence,
        "step_norm": sweep.step_norm,
        "kappa": sweep.kappa,
        "drt_prediction": predictions.drt_prediction,
        "euclidean_gradient_prediction": predictions.euclidean_gradient_prediction,
        "quadratic_loss_model": predictions.quadratic_loss_model,
        "taylor_loss_model": predictions.taylor_loss_model,
        **predictions.calibrated,
    }
    for name, values in arrays.items():
        if values is None:
            continue
        description, units = SWEEP_DATASETS[name]
        units = loss_units if units == LOSS_UNITS else units
        extra = {}
        if name in predictions.calibrated:
            extra = {
                "calibration_constant": predictions.calibration_constants[name],
                "first_divergence": predictions.first_divergence[name],
            }
        write_dataset(group, name, np.asarray(values, dtype=np.float64), description=description, units=units, **extra)
    scalars = {
        "lambda_max": sweep.lambda_max,
        "loss_at_zero": sweep.loss0,
        "gradient_norm": sweep.gradient_norm,
        "unit_step_norm": sweep.unit_step_norm,
        "slope": sweep.slope,
        "curvature": sweep.curvature,
        "breakdown_scale": predictions.breakdown_scale,
    }
    for name, value in scalars.items():
        description, units = SWEEP_SCALARS[name]
        units = loss_units if units == LOSS_UNITS else units
        write_dataset(group, name, np.float64(value), description=description, units=units)
    for key in SWEEP_ATTRIBUTES:
        group.attrs[key] = getattr(predictions, key)
    group.attrs["nonfinite_points"] = int(sweep.nonfinite_points)


def _read_sweep(group: h5py.Group) -> dict[str, Any]:
    arrays = read_group(group)
    sweep: dict[str, Any] = {name: arrays[name] for name in SWEEP_DATASETS if name in arrays}
    sweep.update({name: float(arrays[name]) for name in SWEEP_SCALARS if name in arrays})
    calibrated = [name for name in SWEEP_DATASETS if name.startswith("calibrated_") and name in group]
    sweep["calibration_constants"] = {name: float(group[name].attrs["calibration_constant"]) for name in calibrated}
    sweep["first_divergence"] = {name: float(group[name].attrs["first_divergence"]) for name in calibrated}
    for key in (*SWEEP_ATTRIBUTES, "nonfinite_points"):
        sweep[key] = plain_value(group.attrs.get(key, ""))
    return sweep

