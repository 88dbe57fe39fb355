"""The predictions set beside a slice's measurements (DESIGN.md §4), from :mod:`landscape_probe.slicing.trust`.

For one sweep (all layers, or one layer alone):

- deep relative trust, drt(t) = Π_l (1 + κ_l(t)) − 1, a prediction of both the
  relative function change and the relative gradient change;
- Euclidean trust, |λ_max|·||ΔW(t)|| / ||g(0)||, for the relative gradient change;
- the quadratic loss model loss(0) + t·g·u + ½|λ_max|·t²·||u||² and the
  second-order Taylor model loss(0) + t·g·u + ½·t²·uᵀHu;
- each relative-change prediction multiplied by one constant fitted on the
  ``fit_points`` smallest positive scales (where both are linear), against the
  measured gradient change (``calibrated_*_prediction``) and against the
  measured function change (``calibrated_*_function_prediction``: the same two
  shapes, DRT and linear in ||ΔW||);
- the first scale at which each calibrated prediction is off by 2×, the scale at
  which the relative gradient change first reaches 1 (breakdown), which shape
  the measurement follows, and a verdict in words.

Only positive scales enter the fits and comparisons (trust.py skips the rest);
predictions are given at every scale (they depend on |t|, except the loss
models, which use t).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from landscape_probe.slicing import trust

if TYPE_CHECKING:
    from landscape_probe.slicing.engine import Sweep

CALIBRATED = (
    "calibrated_drt_prediction",
    "calibrated_euclidean_gradient_prediction",
    "calibrated_drt_function_prediction",
    "calibrated_euclidean_function_prediction",
)


@dataclass
class Predictions:
    """Predictions along one sweep, one entry per scale unless said otherwise.

    Attributes:
        drt_prediction, euclidean_gradient_prediction, quadratic_loss_model, taylor_loss_model: raw predictions.
        calibrated: the calibrated predictions by dataset name (see ``CALIBRATED``).
        calibration_constants: the fitted constant of each calibrated prediction.
        first_divergence: by calibrated name, the first positive scale where it is
            off by more than 2× from what it was fitted to (NaN: never).
        breakdown_scale: first positive scale where the relative gradient change reaches 1 (NaN: never).
        shape, function_shape: which shape (compounding, linear, indistinguishable) the
            relative gradient / function change follows, from :func:`trust.compare_shapes`.
        verdict, function_verdict: one sentence each for the summary, from :func:`trust.describe`.
    """

    drt_prediction: np.ndarray
    euclidean_gradient_prediction: np.ndarray
    quadratic_loss_model: np.ndarray
    taylor_loss_model: np.ndarray
    calibrated: dict[str, np.ndarray] = field(default_factory=dict)
    calibration_constants: dict[str, float] = field(default_factory=dict)
    first_divergence: dict[str, float] = field(default_factory=dict)
    breakdown_scale: float = float("nan")
    shape: str = ""
    verdict: str = ""
    function_shape: str = ""
    function_verdict: str = ""

    @classmethod
    def empty(cls) -> Predictions:
        """A placeholder before :func:`predict` runs."""
        nothing = np.zeros(0)
        return cls(nothing, nothing, nothing, nothing)


def predict(sweep: Sweep, scales: np.ndarray, fit_points: int = 3) -> Predictions:
    """All predictions for ``sweep`` measured at ``scales``."""
    lambda_abs = abs(sweep.lambda_max)
    drt = np.asarray(trust.drt_prediction(sweep.kappa), dtype=np.float64)
    euclidean = np.asarray(
        trust.euclidean_gradient_prediction(lambda_abs, sweep.step_norm, sweep.gradient_norm), dtype=np.float64
    )
    predictions = Predictions(
        drt_prediction=drt,
        euclidean_gradient_prediction=euclidean,
        quadratic_loss_model=np.asarray(
            trust.quadratic_loss_model(sweep.loss0, sweep.slope, lambda_abs, scales, sweep.unit_step_norm),
            dtype=np.float64,
        ),
        taylor_loss_model=np.asarray(
            trust.taylor_loss_model(sweep.loss0, sweep.slope, sweep.curvature, scales), dtype=np.float64
        ),
    )
    gradient = trust.compare_shapes(scales, sweep.relative_gradient_change, drt, euclidean, fit_points)
    function = trust.compare_shapes(scales, sweep.relative_function_change, drt, euclidean, fit_points)
    calibrated = {
        "calibrated_drt_prediction": (drt, gradient.drt_constant, gradient.drt_divergence),
        "calibrated_euclidean_gradient_prediction": (
            euclidean, gradient.euclidean_constant, gradient.euclidean_divergence,
        ),
        "calibrated_drt_function_prediction": (drt, function.drt_constant, function.drt_divergence),
        "calibrated_euclidean_function_prediction": (
            euclidean, function.euclidean_constant, function.euclidean_divergence,
        ),
    }
    for name, (raw, constant, divergence) in calibrated.items():
        predictions.calibration_constants[name] = float(constant)
        predictions.calibrated[name] = constant * raw
        predictions.first_divergence[name] = float(divergence)
    predictions.breakdown_scale = float(trust.breakdown_scale(scales, sweep.relative_gradient_change, threshold=1.0))
    predictions.shape, predictions.function_shape = gradient.shape, function.shape
    predictions.verdict = trust.describe(gradient, "relative gradient change")
    predictions.function_verdict = trust.describe(function, "relative function change")
    return predictions
