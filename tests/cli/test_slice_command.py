"""`probe slice`, `probe show` and `probe plot` end to end on a tiny self-describing checkpoint."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.cli import app
from landscape_probe.layout import quantities
from landscape_probe.models.zoo import build_model
from landscape_probe.slicing.result import SliceSweep
from tests.cli_outcomes import one_sentence_exit_2

runner = CliRunner()
ARGS = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 3, "width": 8}
FAST = ["--probe-size", "32", "--scales", "0.01,0.1,1", "--power-iterations", "5", "--device", "cpu"]


def _options(words: list[str]) -> dict[str, str | bool]:
    """Command-line options as a dict, order ignored: flags map to True."""
    options: dict[str, str | bool] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            following = words[i + 1] if i + 1 < len(words) else "--"
            options[word] = True if following.startswith("--") else following
    return options


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_digits.pt"
    save_checkpoint(path, build_model(ARGS), ARGS, data={"name": "digits", "seed": 0})
    return path


@pytest.fixture(scope="module")
def results(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("out")
    result = runner.invoke(
        app, ["slice", str(checkpoint), *FAST, "--layers", "--output", str(out / "s.h5"), "--plots", str(out / "plots")]
    )
    assert result.exit_code == 0, result.output
    return out / "s.h5", result.output


def test_slice_writes_a_self_describing_results_file(results, checkpoint):
    path, output = results
    with h5py.File(path, "r") as h5:
        assert h5.attrs["kind"] == "slice"
        assert h5.attrs["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        assert h5.attrs["direction"] == "gradient" and h5.attrs["scaling"] == "relative"
        assert h5.attrs["probe_size"] == 32 and h5.attrs["loss"] == "cross_entropy"
        recorded = shlex.split(h5.attrs["command_line"])
        assert recorded[:3] == ["probe", "slice", str(checkpoint)]
        assert _options(recorded[3:]) == _options(
            [*FAST, "--layers", "--output", str(path), "--plots", str(path.parent / "plots")]
        )
        np.testing.assert_allclose(h5["scales"][()], [0.01, 0.1, 1.0])
        assert [n.decode() for n in h5["layer_names"][()]] == ["hidden.0.weight", "hidden.1.weight", "output.weight"]
        names = {
            "loss", "accuracy", "relative_function_change", "relative_gradient_change",
            "relative_gradient_change_per_layer", "kl_divergence", "step_norm", "kappa", "drt_prediction",
            "euclidean_gradient_prediction", "lambda_max", "quadratic_loss_model", "taylor_loss_model",
            "calibrated_drt_prediction", "calibrated_euclidean_gradient_prediction",
        }
        assert names <= set(h5)
        assert h5["kappa"].shape == (3, 3)
        np.testing.assert_allclose(h5["kappa"][()], np.outer([0.01, 0.1, 1.0], np.ones(3)), rtol=1e-6)
        assert set(h5["layers"]) == {"hidden.0.weight", "hidden.1.weight", "output.weight"}
        datasets = []
        h5.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
        for dataset in datasets:
            assert dataset.attrs["description"], dataset.name
            assert "units" in dataset.attrs, dataset.name
        measured = h5["relative_gradient_change"][()]
        drt, euclidean = h5["drt_prediction"][()], h5["euclidean_gradient_prediction"][()]
        expected_shape, constants = _shape_by_hand(measured, drt, euclidean)
        assert h5["calibrated_drt_prediction"].attrs["calibration_constant"] == pytest.approx(constants[0], rel=1e-12)
        assert h5.attrs["shape"] == expected_shape
        opening = ("does not tell the two shapes apart" if expected_shape == "indistinguishable"
                   else f"follows the {expected_shape} shape")
        assert h5.attrs["verdict"].startswith(f"The relative gradient change {opening}")
        verdict = str(h5.attrs["verdict"])
    assert "DRT" in output and verdict[:30] in output.replace("\n", " ")
    assert f"wrote {path}" in output.replace("\n", "")
    assert sorted(p.name for p in (path.parent / "plots").iterdir()) == [
        "s_layers_breakdown.png", "s_layers_heatmap.png", "s_loss.png", "s_relative_change.png",
    ]


def _shape_by_hand(measured, drt, euclidean, fit_points=3, margin=1.25):
    """DESIGN.md §4 by hand: fit c on the smallest scales (geometric mean), compare RMS log errors."""
    constants, errors = [], []
    for prediction in (drt, euclidean):
        c = float(np.exp(np.mean(np.log(measured[:fit_points] / prediction[:fit_points]))))
        constants.append(c)
        errors.append(float(np.sqrt(np.mean(np.log(measured / (c * prediction)) ** 2))))
    if abs(errors[0] - errors[1]) <= np.log(margin):
        return "indistinguishable", constants
    return ("compounding (deep relative trust)" if errors[0] < errors[1] else "linear (Euclidean trust)"), constants


def test_probe_slice_and_the_python_api_give_identical_arrays(checkpoint, tmp_path):
    from landscape_probe.slicing.api import slice as slice_model
    from landscape_probe.slicing.result import SliceResult

    words = ["slice", str(checkpoint), *FAST, "--direction", "random", "--two-sided", "--layers", "--seed", "3",
             "--output", str(tmp_path / "cli.h5"), "--no-plots"]
    assert runner.invoke(app, words).exit_code == 0
    from_cli = SliceResult.load(tmp_path / "cli.h5")
    from_api = slice_model(checkpoint, probe_size=32, scales=(0.01, 0.1, 1.0), power_iterations=5, device="cpu",
                           direction="random", two_sided=True, layers=True, seed=3)
    sweeps = [(from_cli.whole, from_api.whole)] + [(from_cli.layers[n], from_api.layers[n]) for n in from_api.layers]
    assert len(sweeps) == 4
    for cli_sweep, api_sweep in sweeps:
        for q in quantities(SliceSweep):
            np.testing.assert_array_equal(getattr(cli_sweep, q.name), getattr(api_sweep, q.name), err_msg=q.name)
    np.testing.assert_array_equal(from_cli.scales, from_api.scales)
    for key in ("checkpoint_sha256", "checkpoint_format", "architecture", "data", "split", "seed", "device"):
        assert from_cli.provenance[key] == from_api.provenance[key], key


def test_chunk_size_changes_no_number_beyond_rounding(checkpoint, tmp_path):
    """32 probe examples in chunks of 5 (six of 5 and one of 2) against one pass, from the command line."""
    from landscape_probe.slicing.result import SliceResult

    for name, chunking in (("one.h5", []), ("chunked.h5", ["--chunk-size", "5"])):
        words = ["slice", str(checkpoint), *FAST, "--dtype", "float64", "--output", str(tmp_path / name), "--no-plots"]
        assert runner.invoke(app, words + chunking).exit_code == 0
    one, chunked = SliceResult.load(tmp_path / "one.h5"), SliceResult.load(tmp_path / "chunked.h5")
    for q in quantities(SliceSweep):
        np.testing.assert_allclose(getattr(chunked.whole, q.name), getattr(one.whole, q.name), rtol=1e-9,
                                   err_msg=q.name)


def test_show_prints_the_summary_again(results):
    path, _ = results
    shown = runner.invoke(app, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "Each layer perturbed alone" in shown.output and "λ_max" in shown.output


def test_plot_redraws_from_the_file(results, tmp_path):
    path, _ = results
    drawn = runner.invoke(app, ["plot", str(path), "--output", str(tmp_path), "--format", "svg"])
    assert drawn.exit_code == 0, drawn.output
    assert (tmp_path / "s_relative_change.svg").stat().st_size > 0


def test_refuses_to_overwrite_before_computing(results, checkpoint):
    path, _ = results
    before = path.read_bytes()
    again = runner.invoke(app, ["slice", str(checkpoint), *FAST, "--output", str(path), "--no-plots"])
    assert again.exit_code == 2
    assert "already exists" in again.output and "--overwrite" in again.output
    assert path.read_bytes() == before


def test_default_output_name_and_no_plots(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["slice", str(checkpoint), *FAST, "--no-plots", "--two-sided", "--direction", "random"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_digits_slice.h5"]
    with h5py.File(tmp_path / "tiny_digits_slice.h5", "r") as h5:
        np.testing.assert_allclose(h5["scales"][()], [-1, -0.1, -0.01, 0.01, 0.1, 1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scaling", "huge"], "scaling"),
        (["--norm", "nuclear"], "norm"),
        (["--scales", "a,b"], "--scales"),
        (["--scales", "0,1"], "positive"),
        (["--direction", "sideways"], "direction"),
        (["--format", "gif"], "format"),
        (["--device", "tpu"], "device"),
        (["--data", "nonexistent_set"], "nonexistent_set"),
        (["--max-scale", "-1", "--points", "3"], "--max-scale"),
        (["--chunk-size", "0"], "--chunk-size must be at least 1"),
    ],
)
def test_bad_options_exit_2_with_one_sentence(checkpoint, tmp_path, options, message):
    fast = [o for o in FAST if o not in ("--scales", "0.01,0.1,1")] if "--scales" in options or "--max-scale" in options else FAST
    args = ["slice", str(checkpoint), *fast, "--output", str(tmp_path / "x.h5"), "--no-plots", *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("options", [["--points-per-pass", "0"], ["--points-per-pass", "many"], ["--points-per-pass", "²"],
                                     ["--memory-budget", "lots"], ["--memory-budget", "0.1B"]])
def test_bad_points_per_pass_or_memory_budget_is_one_sentence(checkpoint, tmp_path, options):
    args = ["slice", str(checkpoint), *FAST, "--output", str(tmp_path / "x.h5"), "--no-plots", *options]
    assert options[0] in one_sentence_exit_2(runner.invoke(app, args))
    assert not (tmp_path / "x.h5").exists()


def test_the_points_per_pass_used_are_recorded(results, checkpoint, tmp_path):
    """auto on a CPU takes one point at a time (batching measured no faster there); 2 is taken as given."""
    path, _ = results
    two = tmp_path / "two.h5"
    words = ["slice", str(checkpoint), *FAST, "--points-per-pass", "2", "--output", str(two), "--no-plots"]
    assert runner.invoke(app, words).exit_code == 0
    for file, expected in ((path, 1), (two, 2)):
        with h5py.File(file, "r") as h5:
            assert h5.attrs["points_per_pass"] == expected and "memory_budget" not in h5.attrs


def test_checkpoint_without_data_needs_data_option(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "bare.pt"
    save_checkpoint(path, build_model(ARGS), ARGS)
    result = runner.invoke(app, ["slice", str(path), *FAST, "--output", str(tmp_path / "x.h5"), "--no-plots"])
    assert result.exit_code == 2
    assert "--data" in result.output
    ok = runner.invoke(app, ["slice", str(path), *FAST, "--data", "digits", "--output", str(tmp_path / "x.h5"), "--no-plots"])
    assert ok.exit_code == 0, ok.output


def test_default_output_names_a_train_run_by_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landscape_probe.cli.slice import default_output

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "fromage_lr0.01_depth16_seed0" / "checkpoint.pt"
    assert default_output(run) == tmp_path / "fromage_lr0.01_depth16_seed0_slice.h5"
    assert default_output(Path("models/net.pt")) == tmp_path / "net_slice.h5"


def test_breakdown_at_the_first_scale_is_shown_as_an_upper_bound() -> None:
    from landscape_probe.slicing.summary import _breakdown_cell, _breakdown_words

    scales = np.array([1e-3, 1e-2, 1e-1])
    assert _breakdown_cell(1e-3, scales) == "≤ 0.001"
    assert _breakdown_cell(0.05, scales) == "0.05"
    assert _breakdown_cell(float("nan"), scales) == "–"
    assert _breakdown_words(1e-3, scales).startswith("is already at or above 1")
    assert _breakdown_words(0.05, scales) == "reaches 1 at t ≈ 0.05"


def test_plots_pointing_at_a_file_is_refused_before_any_work(checkpoint, tmp_path):
    (tmp_path / "figures").write_text("mine")
    outcome = runner.invoke(app, ["slice", str(checkpoint), *FAST, "--output", str(tmp_path / "s.h5"),
                                  "--plots", str(tmp_path / "figures")])
    assert outcome.exit_code == 2 and "is a file, not a folder" in " ".join(outcome.output.split())
    assert not (tmp_path / "s.h5").exists() and (tmp_path / "figures").read_text() == "mine"


def test_mse_on_class_indices_is_one_sentence(checkpoint, tmp_path):
    outcome = runner.invoke(app, ["slice", str(checkpoint), *FAST, "--loss", "mse", "--no-plots",
                                  "--output", str(tmp_path / "s.h5")])
    assert outcome.exit_code == 2 and "class indices" in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "s.h5").exists()
