"""Train figures and the summary rows, drawn from a hand-made results file (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from landscape_probe.training.records import empty_records
from landscape_probe.training.result import TrainResult
from landscape_probe.training.store import RunResult, summary_rows

matplotlib.use("Agg")

LAYERS = ["hidden.0.weight", "output.weight"]


def _run(optimizer: str, depth: int, seed: int, accuracy: float, *, lr: float = 0.01, best: bool = True,
         diverged: bool = False) -> RunResult:
    records = empty_records()
    steps = 4
    records.update(
        loss=[2.0 - 0.1 * s for s in range(steps)], learning_rate=[lr] * steps, gradient_norm=[1.0] * steps,
        weight_norm=[[3.0 + s, 2.0] for s in range(steps)], relative_update=[[0.01, 0.02]] * steps,
        epoch_train_loss=[1.5, 1.0 + seed], epoch_train_accuracy=[0.5, accuracy],
        epoch_test_loss=[1.6, 1.2], epoch_test_accuracy=[0.4, accuracy - 0.1],
        diagnostic_steps=[0, 2], sharpness=[5.0, 4.0], gradient_noise_scale=[10.0, 20.0],
        spectral_shift=[[0.01, 0.02]] * 2, effective_learning_rate=[[], []], intrinsic_learning_rate=[0.0, 0.0],
    )
    return RunResult(optimizer, lr, depth, seed, {"name": "mlp", "depth": depth}, LAYERS, [], records, steps=steps,
                     diverged=diverged, best_of_grid=best)


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    runs = [_run("adam", 2, 0, 0.9), _run("adam", 2, 1, 0.7), _run("adam", 8, 0, 0.3),
            _run("adam", 8, 0, 0.95, lr=0.1, best=False), _run("fromage", 2, 0, 0.8),
            _run("fromage", 8, 0, 0.6, diverged=True)]
    path = tmp_path / "results.h5"
    TrainResult(runs, {"optimizers": ["adam", "fromage"]}).save(path)
    return path


def test_summary_rows_average_the_best_rate_over_seeds(results_file: Path) -> None:
    rows = {(row.optimizer, row.depth): row for row in summary_rows(TrainResult.load(results_file).runs)}
    assert set(rows) == {("adam", 2), ("adam", 8), ("fromage", 2), ("fromage", 8)}
    assert rows["adam", 2].train_accuracy == pytest.approx(0.8) and rows["adam", 2].seeds == 2
    assert rows["adam", 2].train_loss == pytest.approx(1.5)  # (1.0 + 2.0) / 2
    assert rows["adam", 8].train_accuracy == pytest.approx(0.3) and rows["adam", 8].lr == 0.01
    assert rows["fromage", 8].train_accuracy == 0.0 and rows["fromage", 8].diverged == 1
    assert math.isinf(rows["fromage", 8].train_loss)


def test_draw_writes_every_figure_and_the_depth_plot_shows_the_summary(results_file: Path, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from landscape_probe.training import plots as train

    written = train.draw(results_file, tmp_path / "plots", ("png",))
    names = {path.name for path in written}
    for stem in ("loss", "accuracy", "weight_norm_depth2", "weight_norm_depth8", "relative_update_depth8",
                 "diagnostics_depth2", "depth"):
        assert f"{stem}.png" in names
    assert all(path.stat().st_size > 0 for path in written)
    figure = train._depth_figure(TrainResult.load(results_file).runs)
    lines = {line.get_label(): line for line in figure.axes[0].lines}
    np.testing.assert_allclose(lines["adam"].get_xydata(), [[2, 0.8], [8, 0.3]])
    np.testing.assert_allclose(lines["fromage"].get_xydata(), [[2, 0.8], [8, 0.0]])
    plt.close(figure)


def test_a_single_depth_has_no_depth_plot(tmp_path: Path) -> None:
    from landscape_probe.training import plots as train

    path = tmp_path / "one.h5"
    TrainResult([_run("adam", 4, 0, 0.9)], {}, incomplete=True).save(path)
    names = {p.stem for p in train.draw(path, tmp_path / "plots", ("png",))}
    assert "depth" not in names and "weight_norm_depth4" in names


def test_the_sharpness_panel_draws_the_edge_of_stability_for_gradient_descent_and_momentum() -> None:
    from landscape_probe.training.plots import _diagnostics

    runs = [_run("sgd", 2, 0, 0.9, lr=0.1), _run("momentum", 2, 0, 0.9, lr=0.01), _run("adam", 2, 0, 0.9)]
    figure = _diagnostics(runs, 2, "nats", momentum=0.5)
    lines = {line.get_label(): line.get_ydata() for line in figure.axes[0].get_lines()}
    np.testing.assert_allclose(lines["sgd: 2/η"], [2 / 0.1, 2 / 0.1])
    np.testing.assert_allclose(lines["momentum: (2 + 2β)/η, edge of stability"], [3 / 0.01, 3 / 0.01])
    assert not any(label.startswith("adam:") for label in lines)
