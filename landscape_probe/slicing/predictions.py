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

Example:
    >>> import numpy as np
    >>> t = np.array([0.01, 0.1, 1.0])
    >>> measured = Measurements(
    ...     layer_names=["a", "b"], loss=1 + t, accuracy=None, relative_function_change=(1 + t) ** 2 - 1,
    ...     relative_gradient_change=3 * t, relative_gradient_change_per_layer=np.stack([t, t], 1),
    ...     kl_divergence=None, step_norm=2 * t, kappa=np.stack([t, t], 1), lambda_max=-1.5, loss_at_zero=1.0,
    ...     gradient_norm=1.0, unit_step_norm=2.0, slope=-1.0, curvature=0.5, nonfinite_points=0)
    >>> predicted = predict(measured, t)
    >>> predicted.drt_prediction.round(6).tolist(), predicted.euclidean_gradient_prediction.round(6).tolist()
    ([0.0201, 0.21, 3.0], [0.03, 0.3, 3.0])
    >>> round(predicted.calibration_constants["calibrated_euclidean_gradient_prediction"], 6)  # 3t = c · 3t
    1.0
"""

from __future__ import annotations

import numpy as np

from landscape_probe.slicing import trust
from landscape_probe.slicing.result import Measurements, Predictions


def predict(
    measured: Measurements, scales: np.ndarray, fit_points: int = 3, nonfinite_at_w: bool = False
) -> Predictions:
    """All predictions for one sweep whose measurements at ``scales`` are ``measured``.

    When the weights W or the step hold NaN or infinite values (``nonfinite_at_w``, a
    run with ``allow_nonfinite``) or a quantity measured at W itself is not
    finite (loss, gradient norm, λ_max, slope g·u, curvature uᵀHu, ||u||), the
    numbers are still computed and returned as they are, but every shape and
    verdict is :data:`~landscape_probe.slicing.trust.UNDEFINED_AT_W`: nothing
    compared with them would mean anything.
    """
    lambda_abs = abs(measured.lambda_max)
    drt = _floats(trust.drt_prediction(measured.kappa))
    euclidean = _floats(
        trust.euclidean_gradient_prediction(lambda_abs, measured.step_norm, measured.gradient_norm)
    )
    gradient = trust.compare_shapes(scales, measured.relative_gradient_change, drt, euclidean, fit_points)
    function = trust.compare_shapes(scales, measured.relative_function_change, drt, euclidean, fit_points)
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
    return Predictions(
        drt_prediction=drt,
        euclidean_gradient_prediction=euclidean,
        quadratic_loss_model=_floats(
            trust.quadratic_loss_model(
                measured.loss_at_zero, measured.slope, lambda_abs, scales, measured.unit_step_norm
            )
        ),
        taylor_loss_model=_floats(
            trust.taylor_loss_model(measured.loss_at_zero, measured.slope, measured.curvature, scales)
        ),
        **{name: constant * raw for name, (raw, constant, _) in calibrated.items()},
        breakdown_scale=float(trust.breakdown_scale(scales, measured.relative_gradient_change, threshold=1.0)),
        calibration_constants={name: float(constant) for name, (_, constant, _) in calibrated.items()},
        first_divergence={name: float(divergence) for name, (_, _, divergence) in calibrated.items()},
        **_sentences(gradient, function, nonfinite_at_w or not finite_at_w(measured)),
    )


NOT_MEASURED = "not measured: only the loss was measured (measure = loss)"
"""The gradient shape and verdict of a loss-only sweep, which has no gradient change to compare."""


def predict_function_only(
    measured: Measurements, scales: np.ndarray, fit_points: int = 3, nonfinite_at_w: bool = False
) -> Predictions:
    """The predictions of a loss-only sweep (no gradient change, λ_max or uᵀHu: those are NaN).

    Deep relative trust is set beside the relative function change as in
    :func:`predict`; the linear (Euclidean) shape is ``c·||ΔW(t)||``, the same
    shape as ``c'·euclidean_gradient_prediction`` without λ_max, so
    ``calibrated_euclidean_function_prediction`` and the function verdict mean
    what they mean in a full slice. The gradient shape and verdict are
    :data:`NOT_MEASURED`.
    """
    nan = np.full(len(scales), np.nan)
    drt = _floats(trust.drt_prediction(measured.kappa))
    linear = _floats(measured.step_norm)
    function = trust.compare_shapes(scales, measured.relative_function_change, drt, linear, fit_points)
    constants = {
        "calibrated_drt_prediction": (nan, np.nan, np.nan),
        "calibrated_euclidean_gradient_prediction": (nan, np.nan, np.nan),
        "calibrated_drt_function_prediction": (drt, function.drt_constant, function.drt_divergence),
        "calibrated_euclidean_function_prediction": (linear, function.euclidean_constant,
                                                     function.euclidean_divergence),
    }
    undefined = nonfinite_at_w or not np.all(np.isfinite([measured.loss_at_zero, measured.unit_step_norm]))
    sentences = _sentences(function, function, undefined)
    if not undefined:
        sentences.update(shape=NOT_MEASURED, verdict=NOT_MEASURED)
    return Predictions(
        drt_prediction=drt,
        euclidean_gradient_prediction=nan.copy(),
        quadratic_loss_model=nan.copy(),
        taylor_loss_model=nan.copy(),
        **{name: constant * raw for name, (raw, constant, _) in constants.items()},
        breakdown_scale=float("nan"),
        calibration_constants={name: float(constant) for name, (_, constant, _) in constants.items()},
        first_divergence={name: float(divergence) for name, (_, _, divergence) in constants.items()},
        **sentences,
    )


def finite_at_w(measured: Measurements) -> bool:
    """Whether every quantity the sweep measured at W itself (t = 0) is finite."""
    at_w = (
        measured.loss_at_zero, measured.gradient_norm, measured.lambda_max,
        measured.slope, measured.curvature, measured.unit_step_norm,
    )
    return bool(np.all(np.isfinite(np.asarray(at_w, dtype=np.float64))))


def _sentences(gradient: trust.ShapeComparison, function: trust.ShapeComparison, undefined: bool) -> dict[str, str]:
    if undefined:
        return dict.fromkeys(("shape", "verdict", "function_shape", "function_verdict"), trust.UNDEFINED_AT_W)
    return {
        "shape": gradient.shape,
        "verdict": trust.describe(gradient, "relative gradient change"),
        "function_shape": function.shape,
        "function_verdict": trust.describe(function, "relative function change"),
    }


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
