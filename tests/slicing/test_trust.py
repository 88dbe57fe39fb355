"""Trust predictions and fits against closed forms and plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape_probe.slicing.trust import (
    COMPOUNDING,
    INDISTINGUISHABLE,
    LINEAR,
    breakdown_scale,
    calibrate,
    compare_shapes,
    drt_prediction,
    euclidean_gradient_prediction,
    first_divergence,
    quadratic_loss_model,
    taylor_loss_model,
    verdict,
    which_shape,
)

SCALES = np.geomspace(1e-3, 0.5, 25)


def test_drt_closed_form_two_layers_and_accuracy_for_tiny_kappa() -> None:
    t = np.array([0.0, 1e-12, 0.1, 2.0])
    np.testing.assert_allclose(drt_prediction(np.stack([t, t], axis=1)), [0.0, 2e-12, 0.21, 8.0], rtol=1e-12)
    np.testing.assert_allclose(drt_prediction(np.array([[0.5, 1.0, 3.0]])), [1.5 * 2 * 4 - 1], rtol=1e-12)
    np.testing.assert_allclose(drt_prediction(np.array([0.25, 1.0])), [0.25, 1.0], rtol=1e-12)


def test_drt_overflow_gives_inf_without_error() -> None:
    with np.errstate(all="raise"):
        result = drt_prediction(np.full((2, 1000), 1e3))
    assert np.all(np.isinf(result)) and np.all(result > 0)


def test_euclidean_gradient_prediction_closed_form() -> None:
    np.testing.assert_allclose(euclidean_gradient_prediction(-4.0, np.array([0.0, 0.5, 2.0]), 2.0), [0.0, 1.0, 4.0])
    with np.errstate(all="raise"):
        assert euclidean_gradient_prediction(1.0, np.array([1.0]), 0.0)[0] == math.inf


def test_loss_models_closed_form() -> None:
    t = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(quadratic_loss_model(1.0, -3.0, -2.0, t, 0.5), [1 + 3 + 0.25, 1.0, 1 - 6 + 1.0])
    np.testing.assert_allclose(taylor_loss_model(1.0, -3.0, -2.0, t), [1 + 3 - 1, 1.0, 1 - 6 - 4])


def test_calibration_recovers_a_known_constant() -> None:
    prediction = SCALES * (1 + SCALES**2)
    measured = 3.7 * prediction
    measured[-1] = np.inf
    constant, curve = calibrate(prediction, measured, SCALES)
    assert constant == pytest.approx(3.7, rel=1e-12)
    np.testing.assert_allclose(curve, 3.7 * prediction, rtol=1e-12)


def test_calibration_uses_only_the_smallest_valid_positive_scales() -> None:
    scales = np.array([0.4, -0.1, 0.0, 0.1, 0.2, 0.3])
    prediction = np.ones(6)
    measured = np.array([100.0, 50.0, 0.0, 2.0, 8.0, 1e6])
    constant, _ = calibrate(prediction, measured, scales, fit_points=2)
    assert constant == pytest.approx(4.0, rel=1e-12)
    assert math.isnan(calibrate(prediction, np.zeros(6), scales)[0])


def loop_first_divergence(scales, measured, prediction, factor):
    pairs = sorted(zip(scales, measured, prediction))
    for t, m, p in pairs:
        if t > 0 and p != 0 and not (1 / factor <= m / p <= factor):
            return t
    return math.nan


@pytest.mark.parametrize("seed", range(5))
def test_first_divergence_matches_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scales = rng.permutation(np.concatenate([-SCALES[:3], SCALES]))
    prediction = rng.uniform(0.5, 2.0, scales.size)
    measured = prediction * np.exp(rng.normal(0.0, 0.5, scales.size))
    factor = 1.8
    assert first_divergence(scales, measured, prediction, factor) == loop_first_divergence(
        scales, measured, prediction, factor
    )


def test_first_divergence_first_crossing_and_never() -> None:
    scales = np.array([0.1, 0.2, 0.3, 0.4])
    assert first_divergence(scales, np.array([1.0, 3.0, 1.0, 1.0]), np.ones(4)) == 0.2
    assert first_divergence(scales, np.array([1.0, 1.0, np.inf, 1.0]), np.ones(4)) == 0.3
    assert math.isnan(first_divergence(scales, np.array([1.0, 1.9, 0.6, np.nan]), np.ones(4)))


def test_breakdown_scale_is_exact_on_a_power_law() -> None:
    measured = 40.0 * SCALES**1.7
    expected = (1.0 / 40.0) ** (1 / 1.7)
    assert breakdown_scale(SCALES, measured) == pytest.approx(expected, rel=1e-12)
    assert breakdown_scale(SCALES, measured, threshold=0.5) == pytest.approx((0.5 / 40.0) ** (1 / 1.7), rel=1e-12)
    assert math.isnan(breakdown_scale(SCALES, 1e-3 * SCALES))
    assert breakdown_scale(np.array([0.1, 0.2]), np.array([0.5, np.inf])) == 0.2


def test_which_shape_compounding_linear_and_indistinguishable() -> None:
    layers = 16
    drt = drt_prediction(np.repeat(SCALES[:, None], layers, axis=1))
    euclidean = 5.0 * SCALES
    compounding = 0.3 * ((1 + SCALES) ** layers - 1)
    linear = 2.0 * SCALES
    assert which_shape(SCALES, compounding, drt, euclidean) == COMPOUNDING
    assert which_shape(SCALES, linear, drt, euclidean) == LINEAR
    tiny = SCALES[:5] * 1e-3
    assert which_shape(tiny, 2.0 * tiny, drt_prediction(np.repeat(tiny[:, None], 2, axis=1)), tiny) == INDISTINGUISHABLE


def test_verdict_names_the_shape_and_divergence_scales() -> None:
    layers = 16
    drt = drt_prediction(np.repeat(SCALES[:, None], layers, axis=1))
    measured = (1 + SCALES) ** layers - 1
    comparison = compare_shapes(SCALES, measured, drt, SCALES)
    assert math.isnan(comparison.drt_divergence)
    # the linear shape calibrated by hand: c = geometric mean of measured / t over the 3 smallest scales
    constant = math.exp(sum(math.log(measured[i] / SCALES[i]) for i in range(3)) / 3)
    assert comparison.euclidean_constant == pytest.approx(constant, rel=1e-12)
    calibrated_linear = constant * SCALES
    assert comparison.euclidean_divergence == loop_first_divergence(SCALES, measured, calibrated_linear, 2.0)
    sentence = verdict(SCALES, measured, drt, SCALES)
    assert COMPOUNDING in sentence and "within 2× at every scale" in sentence
    assert f"{comparison.euclidean_divergence:.3g}" in sentence
