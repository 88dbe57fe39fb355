"""Non-finite weights in a slice: refused by default; with --allow-nonfinite sliced, and no verdict stated.

Also the verdict logic itself: NaN compares false with everything, so a sweep
whose measurements or predictions are NaN must not be said to be "within 2× at
every scale" or to "stay below 1".
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import build_model
from landscape_probe.slicing import trust
from landscape_probe.slicing.predictions import predict
from landscape_probe.slicing.result import Measurements
from landscape_probe.slicing.summary import _breakdown_words, summary_text

runner = CliRunner()
ARGS = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}
FAST = ["--probe-size", "32", "--scales", "0.01,0.1,1", "--power-iterations", "3", "--device", "cpu", "--no-plots"]
SENTENCES = ("shape", "verdict", "function_shape", "function_verdict")
FALSE_CLAIMS = ("within 2×", "stays below 1", "follows the", "does not tell")


def nonfinite_checkpoint(folder: Path, value: float) -> Path:
    torch.manual_seed(0)
    model = build_model(ARGS)
    path = folder / "bad.pt"
    save_checkpoint(path, model, ARGS, data={"name": "digits", "seed": 0})
    saved = torch.load(path, weights_only=True)
    saved["state_dict"]["hidden.0.weight"][0, :3] = value
    torch.save(saved, path)
    return path


def sentence_attributes(path: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    with h5py.File(path, "r") as h5:
        groups = [h5]
        h5.visititems(lambda name, item: groups.append(item) if isinstance(item, h5py.Group) else None)
        for group in groups:
            found += [(f"{group.name}:{key}", str(group.attrs[key])) for key in SENTENCES if key in group.attrs]
    return found


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_weights_refused_without_the_flag(tmp_path: Path, value: float) -> None:
    path = nonfinite_checkpoint(tmp_path, value)
    result = runner.invoke(app, ["slice", str(path), *FAST, "--output", str(tmp_path / "s.h5")])
    assert result.exit_code == 2
    assert "non-finite weights (3 of the 512 values of hidden.0.weight" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.h5").exists()


def test_allow_nonfinite_slices_and_states_no_verdict(tmp_path: Path) -> None:
    path = nonfinite_checkpoint(tmp_path, float("nan"))
    out = tmp_path / "s.h5"
    result = runner.invoke(app, ["slice", str(path), *FAST, "--layers", "--allow-nonfinite", "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Verdicts: undefined: non-finite values at W." in text
    assert not any(claim in text for claim in FALSE_CLAIMS), text
    attributes = sentence_attributes(out)
    with h5py.File(out, "r") as h5:
        layers = len(h5["layer_names"][()])
    assert layers == 2  # depth 2: hidden.0.weight, output.weight
    # the whole sweep and each layer alone, four sentences each
    assert len(attributes) == 4 * (1 + layers)
    assert {value for _, value in attributes} == {trust.UNDEFINED_AT_W}
    with h5py.File(out, "r") as h5:
        assert np.isnan(h5["loss"][()]).all()  # NaN weights feed every output: the numbers are NaN as measured
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "undefined: non-finite values at W" in " ".join(shown.output.split())


def module_with_inf() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        model[2].bias[1] = math.inf  # a 1-D parameter: not perturbed, but W is not finite
    return model


def test_a_module_with_nonfinite_weights_is_refused_by_lp_slice_unless_allowed() -> None:
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3
    with pytest.raises(ProbeError, match=r"1 of the 3 values of 2\.bias are NaN or infinite.*allow_nonfinite=True"):
        lp.slice(module_with_inf(), (x, y), scales=(0.01, 0.1), device="cpu")
    result = lp.slice(module_with_inf(), (x, y), scales=(0.01, 0.1), device="cpu", allow_nonfinite=True)
    assert all(getattr(result.whole, key) == trust.UNDEFINED_AT_W for key in SENTENCES)
    assert "undefined: non-finite values at W" in summary_text(result)


def measurements(t: np.ndarray, gradient_change: np.ndarray, lambda_max: float = 2.0) -> Measurements:
    return Measurements(
        layer_names=["a", "b"], loss=1 + t, accuracy=None, relative_function_change=gradient_change,
        relative_gradient_change=gradient_change, relative_gradient_change_per_layer=np.stack([t, t], 1),
        kl_divergence=None, step_norm=t, kappa=np.stack([t, t], 1), lambda_max=lambda_max, loss_at_zero=1.0,
        gradient_norm=1.0, unit_step_norm=1.0, slope=-1.0, curvature=0.5, nonfinite_points=0,
    )


T = np.array([1e-3, 1e-2, 1e-1, 1.0])


def test_all_nan_measurements_claim_nothing() -> None:
    predicted = predict(measurements(T, np.full(4, np.nan)), T)
    for sentence in (predicted.verdict, predicted.function_verdict):
        assert "cannot be compared with either prediction" in sentence
        assert "within 2×" not in sentence
    assert _breakdown_words(predicted.breakdown_scale, T, np.full(4, np.nan)).startswith("is NaN at every scale")


def test_nan_lambda_max_makes_every_verdict_undefined() -> None:
    predicted = predict(measurements(T, 2 * T, lambda_max=math.nan), T)
    assert [getattr(predicted, key) for key in SENTENCES] == [trust.UNDEFINED_AT_W] * 4


def test_partly_nan_measurements_are_judged_only_where_defined() -> None:
    measured = np.array([2e-3, 2e-2, np.nan, np.nan])  # linear in t (ratio 2 to λ·t/||g|| = 2t) where defined
    sentence = predict(measurements(T, measured), T).verdict
    assert "within 2× at the 2 of 4 scales where both are defined" in sentence
    assert "within 2× at every scale" not in sentence
    words = _breakdown_words(trust.breakdown_scale(T, measured), T, measured)
    assert words == "stays below 1 at the 2 of 4 scales where it is not NaN"
    # with every scale defined the old sentences stand
    assert "within 2× at every scale" in predict(measurements(T, 2 * T), T).verdict
    assert _breakdown_words(math.nan, T, np.array([0.1, 0.2, 0.3, 0.4])) == "stays below 1 over the sweep"


def test_nan_prediction_is_not_comparable() -> None:
    measured = 2 * T
    comparison = trust.compare_shapes(T, measured, trust.drt_prediction(np.stack([T, T], 1)), np.full(4, np.nan))
    assert comparison.euclidean_compared == 0 and math.isnan(comparison.euclidean_divergence)
    assert "Euclidean trust not comparable at any scale (non-finite values)" in trust.describe(comparison)


@pytest.mark.parametrize("seed", range(5))
def test_compared_points_matches_a_plain_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scales = np.sort(rng.uniform(-1, 1, 12))
    measured, prediction = rng.uniform(0, 2, 12), rng.uniform(0, 2, 12)
    for values in (measured, prediction):
        values[rng.choice(12, 4, replace=False)] = rng.choice([np.nan, np.inf, 0.0], 4)
    expected = 0
    for t, m, p in zip(scales, measured, prediction):
        if t > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                expected += not math.isnan(m / p) if p != 0 else not (m == 0 or math.isnan(m))
    assert trust.compared_points(scales, measured, prediction) == expected
