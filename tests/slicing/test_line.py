"""The loss-only line (``measure="loss"``) against a float64 plain loop, with no Hessian-vector product taken."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import build_model
from landscape_probe.params import select_layers
from landscape_probe.slicing import directions
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.engine import run_slice
from landscape_probe.slicing.predictions import NOT_MEASURED
from landscape_probe.slicing.result import SliceResult
from tests.slicing.test_engine import class_data, plain_sweep, small_mlp

SCALES = (1e-3, 1e-2, 1e-1, 0.5, 2.0)


def line_config(**changes) -> SliceConfig:
    return SliceConfig(**{"scales": SCALES, "device": "cpu", "dtype": "float64", "measure": "loss", **changes})


@pytest.mark.parametrize("kind", ["random", "gradient"])
def test_line_equals_a_plain_loop_in_float64(kind):
    model, (x, y) = small_mlp(), class_data()
    result = run_slice(model, x, y, "cross_entropy", line_config(direction=kind, seed=3))
    names = select_layers(model)
    base = {k: v.detach().clone() for k, v in model.named_parameters() if k in names}
    if kind == "random":
        direction = directions.random_direction(base, 3)
    else:
        gradient = torch.autograd.grad(F.cross_entropy(model(x), y), [dict(model.named_parameters())[k] for k in names])
        direction = {k: -g for k, g in zip(names, gradient)}
    unit = directions.unit_step(direction, base, "relative", "frobenius")
    expected = plain_sweep(model, names, x, y, SCALES, unit)  # deepcopy, add, forward (and backward) per point
    np.testing.assert_allclose(result.loss, expected["loss"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.accuracy, expected["accuracy"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(result.relative_function_change, expected["relative_function_change"], rtol=1e-12)
    np.testing.assert_allclose(result.kl_divergence, expected["kl_divergence"], rtol=1e-10, atol=1e-15)
    assert result.loss_at_zero == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-12)
    np.testing.assert_allclose(result.kappa, np.outer(SCALES, [1.0] * len(names)), rtol=1e-12)
    assert np.isnan(result.relative_gradient_change).all() and np.isnan(result.lambda_max)
    assert np.isnan(result.euclidean_gradient_prediction).all() and np.isnan(result.quadratic_loss_model).all()
    assert np.isnan(result.breakdown_scale) and result.verdict == NOT_MEASURED
    assert np.isnan(result.slope) == (kind == "random")


def test_the_model_is_given_back_as_it_was():
    model, (x, y) = small_mlp(), class_data()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    storages = {k: v.data_ptr() for k, v in model.named_parameters()}
    run_slice(model, x, y, "cross_entropy", line_config(direction="random"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    pointers = {k: v.data_ptr() for k, v in model.named_parameters()}
    assert len(set(pointers.values())) == len(pointers)  # every parameter has its own storage again
    assert pointers.keys() == storages.keys()


def test_line_and_full_slice_agree_on_what_both_measure():
    model, (x, y) = small_mlp(), class_data()
    line = run_slice(model, x, y, "cross_entropy", line_config(direction="random"))
    full = run_slice(model, x, y, "cross_entropy", line_config(direction="random", measure="gradient"))
    for name in ("loss", "accuracy", "relative_function_change", "kl_divergence", "drt_prediction", "kappa"):
        np.testing.assert_allclose(getattr(line, name), getattr(full, name), rtol=1e-10, atol=1e-14)
    assert line.function_verdict == full.function_verdict


@pytest.mark.parametrize("kind", ["random", "gradient"])
def test_measure_loss_takes_no_hessian_vector_product(monkeypatch, kind):
    from landscape_probe.curvature import hessian, lanczos

    def refuse(*args, **kwargs):
        raise AssertionError("a Hessian-vector product was taken")

    monkeypatch.setattr(hessian.GradientGraph, "hessian_vector_product", refuse)
    monkeypatch.setattr(hessian, "hessian_vector_product", refuse)
    monkeypatch.setattr(hessian, "hessian_vector_product_forward_over_reverse", refuse)
    monkeypatch.setattr(hessian, "top_eigenpair", refuse)
    monkeypatch.setattr(lanczos, "largest_magnitude_eigenpair", refuse)
    model, (x, y) = small_mlp(), class_data()
    result = run_slice(model, x, y, "cross_entropy", line_config(direction=kind))
    assert np.isfinite(result.loss).all()
    with pytest.raises(AssertionError, match="Hessian-vector product"):
        run_slice(model, x, y, "cross_entropy", line_config(direction=kind, measure="gradient"))


def test_bad_measure_and_layers_are_refused():
    with pytest.raises(ProbeError, match="Unknown measure"):
        line_config(measure="hessian").check()
    with pytest.raises(ProbeError, match="--layers needs --measure gradient"):
        line_config(per_layer=True).check()


def test_cli_writes_a_loss_only_file_that_show_plot_and_load_read(tmp_path):
    runner = CliRunner()
    args = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 3, "width": 8}
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, build_model(args), args, data={"name": "digits", "seed": 0})
    out = tmp_path / "line.h5"
    words = ["slice", str(checkpoint), "--measure", "loss", "--direction", "random", "--probe-size", "32",
             "--scales", "0.01,0.1,1", "--device", "cpu", "-o", str(out), "--plots", str(tmp_path / "plots")]
    made = runner.invoke(app, words)
    assert made.exit_code == 0, made.output
    loaded = SliceResult.load(out)
    assert loaded.config.measure == "loss" and np.isnan(loaded.relative_gradient_change).all()
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "Only the loss was measured" in " ".join(shown.output.split())
    assert "trust region" not in shown.output.replace("gradient's trust region", "")
    drawn = runner.invoke(app, ["plot", str(out), "--output", str(tmp_path / "again")])
    assert drawn.exit_code == 0, drawn.output
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["line_loss.png", "line_relative_change.png"]
    import landscape_probe as lp

    assert lp.load(out).to_pandas()["loss"].tolist() == pytest.approx(loaded.loss.tolist())


def test_cli_refuses_an_unknown_measure_in_one_sentence(tmp_path):
    result = CliRunner().invoke(app, ["slice", "missing.pt", "--measure", "everything", "-o", str(tmp_path / "x.h5")])
    assert "measure" in one_sentence_exit_2(result)
