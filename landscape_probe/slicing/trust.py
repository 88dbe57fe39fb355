"""Predictions of deep relative trust and Euclidean trust, and how a measurement compares (DESIGN.md §4).

Everything here works on numpy arrays over the scales t of one sweep: the
engine measures at every t, then calls these functions once.

- Deep relative trust (Bernstein, Vahdat, Yue & Liu, NeurIPS 2020):
  ``drt(t) = Π_l (1 + κ_l(t)) − 1``, which compounds across layers.
- Euclidean trust: the gradient is λ_max-Lipschitz, so
  ``||g(t) − g(0)|| / ||g(0)|| ≤ |λ_max| · ||ΔW|| / ||g(0)||``, linear in the step;
  the loss follows the quadratic model ``loss(0) + g·ΔW + (|λ_max|/2)||ΔW||²``
  or the second-order Taylor model ``loss(0) + g·ΔW + ½ ΔWᵀHΔW``.
- Shape: each prediction is calibrated by one constant on the smallest scales
  (where both are linear) and extrapolated; the one whose calibrated curve
  stays closer to the measurement, in log space, gives the shape.

The fits and scale-finders look only at positive scales t > 0 (negative scales
of a two-sided loss slice are ignored by them).

Example:
    >>> import numpy as np
    >>> drt_prediction(np.array([[0.1, 0.1], [1.0, 1.0]])).round(6).tolist()
    [0.21, 3.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COMPOUNDING = "compounding (deep relative trust)"
LINEAR = "linear (Euclidean trust)"
INDISTINGUISHABLE = "indistinguishable"
UNDEFINED_AT_W = "undefined: non-finite values at W"
"""Every shape and verdict of a sweep whose weights, or measurements at W itself, are not finite."""
SHAPE_MARGIN = math.log(1.25)


def drt_prediction(kappas: np.ndarray) -> np.ndarray:
    """Deep relative trust: ``Π_l (1 + κ_l) − 1`` for each point.

    Computed as ``expm1(Σ_l log1p κ_l)``, accurate for tiny κ; a product too
    large for a float64 gives ``inf`` (no exception).

    Args:
        kappas: shape ``(points, layers)``, κ_l(t) at each point; a 1-D array is
            read as one layer.

    Returns:
        Shape ``(points,)``.
    """
    kappas = np.asarray(kappas, dtype=np.float64)
    if kappas.ndim == 1:
        kappas = kappas[:, None]
    with np.errstate(over="ignore"):
        return np.expm1(np.sum(np.log1p(kappas), axis=1))


def euclidean_gradient_prediction(lambda_max: float, step_norms: np.ndarray, gradient_norm: float) -> np.ndarray:
    """Euclidean trust for the relative gradient change: ``|λ_max| · ||ΔW|| / ||g(0)||``.

    ``λ_max`` is the Hessian eigenvalue of largest magnitude (its sign is
    dropped: the Lipschitz constant is ``|λ_max|``). A zero gradient gives ``inf``
    (``nan`` at ΔW = 0).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return abs(lambda_max) * np.asarray(step_norms, dtype=np.float64) / np.float64(gradient_norm)


def quadratic_loss_model(
    loss0: float, slope: float, lambda_max: float, scales: np.ndarray, unit_step_norm: float
) -> np.ndarray:
    """The Euclidean-trust loss model ``loss(0) + t·slope + (|λ_max|/2) · t² · ||u||²``.

    Here ``ΔW = t·u`` and ``slope = g·u``; with ``|λ_max|`` the Lipschitz
    constant of the gradient, this is the upper bound of the descent lemma.
    """
    t = np.asarray(scales, dtype=np.float64)
    return loss0 + t * slope + 0.5 * abs(lambda_max) * t**2 * unit_step_norm**2


def taylor_loss_model(loss0: float, slope: float, curvature: float, scales: np.ndarray) -> np.ndarray:
    """The second-order Taylor model ``loss(0) + t·slope + ½ t² · uᵀHu`` (``curvature = uᵀHu``)."""
    t = np.asarray(scales, dtype=np.float64)
    return loss0 + t * slope + 0.5 * t**2 * curvature


def calibrate(
    prediction: np.ndarray, measured: np.ndarray, scales: np.ndarray, fit_points: int = 3
) -> tuple[float, np.ndarray]:
    """Fit one constant c so that ``c · prediction`` matches the measurement at the smallest scales.

    c minimises ``Σ (log measured − log(c · prediction))²`` over the
    ``fit_points`` smallest positive scales where both are finite and > 0: the
    geometric mean of ``measured / prediction`` there.

    Returns:
        ``(c, c · prediction)``; ``c`` is NaN (and so is the curve) when no point qualifies.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    usable = np.flatnonzero(_positive(prediction) & _positive(measured) & (np.asarray(scales) > 0))
    chosen = usable[np.argsort(np.asarray(scales)[usable], kind="stable")][:fit_points]
    if chosen.size == 0:
        return math.nan, np.full_like(prediction, math.nan)
    constant = float(np.exp(np.mean(np.log(measured[chosen]) - np.log(prediction[chosen]))))
    return constant, constant * prediction


def first_divergence(scales: np.ndarray, measured: np.ndarray, prediction: np.ndarray, factor: float = 2.0) -> float:
    """The first positive scale at which prediction and measurement differ by more than ``factor``×.

    Going up the positive scales, the first t whose ratio ``measured /
    prediction`` lies outside ``[1/factor, factor]`` (the first crossing; the
    two may agree again further on). Points where the ratio is undefined
    (NaN, ``0/0``, ``inf/inf``) are skipped; an overflowed measurement against
    a finite prediction counts as diverged. NaN if they never differ that much.
    """
    for t, m, p in _ascending_positive(scales, measured, prediction):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.float64(m) / np.float64(p)
        if not np.isnan(ratio) and not (1.0 / factor <= ratio <= factor):
            return float(t)
    return math.nan


def compared_points(scales: np.ndarray, measured: np.ndarray, prediction: np.ndarray) -> int:
    """How many positive scales :func:`first_divergence` can judge: those where ``measured / prediction`` is defined."""
    count = 0
    for _, m, p in _ascending_positive(scales, measured, prediction):
        with np.errstate(divide="ignore", invalid="ignore"):
            count += not np.isnan(np.float64(m) / np.float64(p))
    return count


def breakdown_scale(scales: np.ndarray, measured: np.ndarray, threshold: float = 1.0) -> float:
    """The smallest scale at which the measurement reaches ``threshold``, interpolated in log-log.

    Between the last positive scale below the threshold ``(t₀, m₀)`` and the first
    at or above it ``(t₁, m₁)``,
    ``log t* = log t₀ + (log θ − log m₀) · (log t₁ − log t₀) / (log m₁ − log m₀)``,
    exact for a power law ``m = a·tᵖ``. Without a usable point below (the first
    scale is already above, m₀ ≤ 0) or a finite m₁ (overflow), t₁ itself is returned:
    then it is only an upper bound, which is how ``probe show`` prints it.
    NaN measurements are skipped; NaN if the threshold is never reached.
    """
    previous: tuple[float, float] | None = None
    for t, m, _ in _ascending_positive(scales, measured, measured):
        if np.isnan(m):
            continue
        if m >= threshold:
            if previous is None or previous[1] <= 0 or not np.isfinite(m) or m == previous[1]:
                return float(t)
            t0, m0 = previous
            fraction = (math.log(threshold) - math.log(m0)) / (math.log(m) - math.log(m0))
            return float(math.exp(math.log(t0) + fraction * (math.log(t) - math.log(t0))))
        previous = (float(t), float(m))
    return math.nan


@dataclass(frozen=True)
class ShapeComparison:
    """How a measurement compares with the two calibrated predictions.

    Attributes:
        shape: ``COMPOUNDING``, ``LINEAR`` or ``INDISTINGUISHABLE``.
        drt_constant, euclidean_constant: the calibration constants c.
        drt_error, euclidean_error: RMS of ``log(measured / calibrated)`` over the shared points.
        drt_divergence, euclidean_divergence: first t where the calibrated prediction is off by > 2× (NaN: never
            at the scales compared).
        drt_compared, euclidean_compared: the positive scales where that comparison was defined
            (:func:`compared_points`); of ``positive_points`` in all.
    """

    shape: str
    drt_constant: float
    euclidean_constant: float
    drt_error: float
    euclidean_error: float
    drt_divergence: float
    euclidean_divergence: float
    drt_compared: int
    euclidean_compared: int
    positive_points: int


def compare_shapes(
    scales: np.ndarray, measured: np.ndarray, drt: np.ndarray, euclidean: np.ndarray, fit_points: int = 3
) -> ShapeComparison:
    """Calibrate both predictions and decide which shape the measurement follows.

    The errors are taken over the positive scales where the measurement and
    both calibrated predictions are finite and > 0. One shape wins when its
    RMS log error is smaller by more than ``SHAPE_MARGIN = log 1.25`` (a
    typical factor of 1.25); otherwise, or with fewer than two shared points,
    the shapes are ``INDISTINGUISHABLE``.
    """
    scales, measured = np.asarray(scales, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    drt_constant, drt_calibrated = calibrate(drt, measured, scales, fit_points)
    euclidean_constant, euclidean_calibrated = calibrate(euclidean, measured, scales, fit_points)
    shared = _positive(measured) & _positive(drt_calibrated) & _positive(euclidean_calibrated) & (scales > 0)
    drt_error = _rms_log_error(measured, drt_calibrated, shared)
    euclidean_error = _rms_log_error(measured, euclidean_calibrated, shared)
    if shared.sum() < 2 or abs(drt_error - euclidean_error) <= SHAPE_MARGIN:
        shape = INDISTINGUISHABLE
    else:
        shape = COMPOUNDING if drt_error < euclidean_error else LINEAR
    return ShapeComparison(
        shape=shape,
        drt_constant=drt_constant,
        euclidean_constant=euclidean_constant,
        drt_error=drt_error,
        euclidean_error=euclidean_error,
        drt_divergence=first_divergence(scales, measured, drt_calibrated),
        euclidean_divergence=first_divergence(scales, measured, euclidean_calibrated),
        drt_compared=compared_points(scales, measured, drt_calibrated),
        euclidean_compared=compared_points(scales, measured, euclidean_calibrated),
        positive_points=int(np.sum(scales > 0)),
    )


def which_shape(scales: np.ndarray, measured: np.ndarray, drt: np.ndarray, euclidean: np.ndarray) -> str:
    """The shape the measurement follows: ``COMPOUNDING``, ``LINEAR`` or ``INDISTINGUISHABLE``.

    See :func:`compare_shapes` for the calibration and the margin.
    """
    return compare_shapes(scales, measured, drt, euclidean).shape


def verdict(
    scales: np.ndarray,
    measured: np.ndarray,
    drt: np.ndarray,
    euclidean: np.ndarray,
    quantity: str = "relative gradient change",
) -> str:
    """One sentence for the summary: the shape ``quantity`` follows, and where each calibrated prediction is off by > 2×.

    Example: "The relative gradient change follows the compounding (deep relative
    trust) shape; calibrated, deep relative trust is within 2× at every scale and
    Euclidean trust off by more than 2× from t = 0.0316."
    """
    return describe(compare_shapes(scales, measured, drt, euclidean), quantity)


def describe(comparison: ShapeComparison, quantity: str = "relative gradient change") -> str:
    """The sentence of :func:`verdict` for a comparison already made.

    It claims agreement only at the scales actually compared: NaN compares
    false with everything, so a prediction or measurement that is NaN at a
    scale is never counted as "within 2×" there, and a measurement with no
    finite positive value at the smallest scales (nothing to calibrate on) is
    said to be not comparable.
    """
    if math.isnan(comparison.drt_constant) and math.isnan(comparison.euclidean_constant):
        return (
            f"The {quantity} cannot be compared with either prediction: there is no scale among the smallest "
            "where it and the predictions are finite and positive."
        )
    if comparison.shape == INDISTINGUISHABLE:
        opening = f"The {quantity} does not tell the two shapes apart"
    else:
        opening = f"The {quantity} follows the {comparison.shape} shape"
    return (
        f"{opening}; calibrated, deep relative trust is "
        f"{_off_from(comparison.drt_divergence, comparison.drt_compared, comparison.positive_points)} "
        f"and Euclidean trust "
        f"{_off_from(comparison.euclidean_divergence, comparison.euclidean_compared, comparison.positive_points)}."
    )


def _off_from(scale: float, compared: int, points: int) -> str:
    if not math.isnan(scale):
        return f"off by more than 2× from t = {scale:.3g}"
    if compared == 0:
        return "not comparable at any scale (non-finite values)"
    if compared < points:
        return f"within 2× at the {compared} of {points} scales where both are defined"
    return "within 2× at every scale"


def _rms_log_error(measured: np.ndarray, curve: np.ndarray, where: np.ndarray) -> float:
    if where.sum() < 2:
        return math.nan
    return float(np.sqrt(np.mean(np.log(measured[where] / curve[where]) ** 2)))


def _positive(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.isfinite(values) & (values > 0)


def _ascending_positive(scales: np.ndarray, first: np.ndarray, second: np.ndarray) -> list[tuple[float, float, float]]:
    scales = np.asarray(scales, dtype=np.float64)
    order = [i for i in np.argsort(scales, kind="stable") if scales[i] > 0]
    return [(float(scales[i]), float(first[i]), float(second[i])) for i in order]
