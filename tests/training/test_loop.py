"""The training loop and the run grid, against a plain hand-written loop and closed forms."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.data.datasets import Dataset
from landscape_probe.errors import ProbeError
from landscape_probe.training.grid import lr_grid_values, mark_best_of_grid, planned_runs, train_grid
from landscape_probe.training.records import RECORDED
from landscape_probe.training.result import TrainResult
from landscape_probe.training.store import RunResult
from landscape_probe.training.loop import TrainConfig, batch_order, init_model, model_args_for, schedule_factor, train_run

CONFIG = TrainConfig(optimizers=("sgd", "adam"), width=8, epochs=2, batch_size=16, diagnostics_every=2,
                     diagnostic_batch_size=8, sharpness_iterations=3, dataset="tiny")
STEPS_PER_EPOCH = 3  # 40 examples in batches of 16


def test_records_match_a_plain_sgd_loop(tiny_data: Dataset) -> None:
    lr, depth = 0.3, 3
    run = train_run(CONFIG, tiny_data, "sgd", lr, depth, seed=0)
    model = init_model(model_args_for(CONFIG, tiny_data, depth), seed=0)
    params = list(model.parameters())
    layers = [p for p in params if p.ndim >= 2]
    expected: dict[str, list] = {name: [] for name in ("loss", "gradient_norm", "weight_norm", "relative_update",
                                                        "epoch_train_loss", "epoch_test_accuracy")}
    for step in range(CONFIG.epochs * STEPS_PER_EPOCH):
        epoch, index = divmod(step, STEPS_PER_EPOCH)
        batch = batch_order(40, 0, epoch)[16 * index : 16 * (index + 1)]
        loss = F.cross_entropy(model(tiny_data.x_train[batch]), tiny_data.y_train[batch])
        grads = torch.autograd.grad(loss, params)
        before = [w.detach().clone() for w in layers]
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        expected["loss"].append(loss.item())
        expected["gradient_norm"].append(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)))
        expected["weight_norm"].append([float(w.double().norm()) for w in before])
        expected["relative_update"].append(
            [float((w.detach() - b).double().norm() / b.double().norm()) for w, b in zip(layers, before)])
        if (step + 1) % STEPS_PER_EPOCH == 0:
            with torch.no_grad():
                expected["epoch_train_loss"].append(float(F.cross_entropy(model(tiny_data.x_train), tiny_data.y_train)))
                correct = (model(tiny_data.x_test).argmax(1) == tiny_data.y_test).double().mean()
                expected["epoch_test_accuracy"].append(float(correct))
    assert run.layer_names == ["hidden.0.weight", "hidden.1.weight", "output.weight"]
    for name, values in expected.items():
        np.testing.assert_allclose(np.asarray(run.records[name]), np.asarray(values), rtol=1e-4, err_msg=name)
    assert run.records["learning_rate"] == [lr] * 6
    assert run.records["diagnostic_steps"] == [0, 2, 4]


def test_learning_rate_follows_the_cosine_closed_form(tiny_data: Dataset) -> None:
    config = replace(CONFIG, schedule="cosine", diagnostics_every=0)
    run = train_run(config, tiny_data, "sgd", 0.2, 2, seed=0)
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)]
    np.testing.assert_allclose(run.records["learning_rate"], expected, rtol=1e-12)
    assert schedule_factor("exponential", 6, 6) == pytest.approx(0.01)
    assert schedule_factor("inverse", 6, 6) == pytest.approx(0.1)
    assert [schedule_factor("step", s, 4) for s in range(4)] == [1.0, 1.0, 0.1, 0.01]


def test_every_optimiser_starts_from_the_same_weights_and_batches(tiny_data: Dataset) -> None:
    config = replace(CONFIG, epochs=1, diagnostics_every=0)
    sgd = train_run(config, tiny_data, "sgd", 0.1, 3, seed=1)
    adam = train_run(config, tiny_data, "adam", 1e-3, 3, seed=1)
    other_seed = train_run(config, tiny_data, "adam", 1e-3, 3, seed=2)
    assert sgd.records["loss"][0] == adam.records["loss"][0]
    assert sgd.records["weight_norm"][0] == adam.records["weight_norm"][0]
    assert other_seed.records["weight_norm"][0] != adam.records["weight_norm"][0]


def test_effective_and_intrinsic_learning_rates_with_batch_norm(tiny_data: Dataset) -> None:
    config = replace(CONFIG, norm="batch", weight_decay=0.01, epochs=1)
    run = train_run(config, tiny_data, "sgd", 0.5, 3, seed=0)
    assert run.normalised_layer_names == ["hidden.0.weight", "hidden.1.weight"]
    start = init_model(model_args_for(config, tiny_data, 3), seed=0)  # the weights of diagnostic step 0
    norms = [float(start.hidden[i].weight.double().norm()) for i in range(2)]
    np.testing.assert_allclose(run.records["effective_learning_rate"][0], [0.5 / n**2 for n in norms], rtol=1e-5)
    assert run.records["intrinsic_learning_rate"] == [pytest.approx(0.005)] * 2


def test_a_diverging_run_is_marked_and_the_others_carry_on(tiny_data: Dataset, tmp_path: Path) -> None:
    config = replace(CONFIG, learning_rates={"sgd": 1e30})
    outcome = train_grid(config, tiny_data, tmp_path)
    sgd, adam = outcome.runs
    assert sgd.diverged and sgd.steps < 6 and sgd.final_train_loss == math.inf
    assert not adam.diverged and adam.steps == 6 and len(adam.records["epoch_train_loss"]) == 2
    stored = {run.optimizer: run for run in TrainResult.load(outcome.path).runs}
    assert stored["sgd"].diverged and not stored["adam"].diverged and not outcome.incomplete


@pytest.mark.parametrize("stop_after", [2, 8])
def test_resume_gives_the_same_results_as_an_uninterrupted_run(
    tiny_data: Dataset, tmp_path: Path, stop_after: int, stop_request
) -> None:
    config = replace(CONFIG, optimizers=("momentum", "adam"))
    whole = train_grid(config, tiny_data, tmp_path / "whole")
    partial = train_grid(config, tiny_data, tmp_path / "cut", should_stop=stop_request(stop_after))
    assert partial.incomplete and TrainResult.load(partial.path).incomplete
    assert len(list((tmp_path / "cut").glob("*/resume.pt"))) == 1
    resumed = train_grid(config, tiny_data, tmp_path / "cut", resume=True)
    assert not resumed.incomplete and not list((tmp_path / "cut").glob("*/resume.pt"))
    expected = {run.name: run for run in TrainResult.load(whole.path).runs}
    for run in TrainResult.load(resumed.path).runs:
        for name in RECORDED:
            np.testing.assert_array_equal(run.records[name], expected[run.name].records[name], err_msg=name)
        assert run.completed and run.steps == expected[run.name].steps
        final = torch.load(tmp_path / "cut" / run.name / "checkpoint.pt", weights_only=True)["state_dict"]
        reference = torch.load(tmp_path / "whole" / run.name / "checkpoint.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(final[k], reference[k]) for k in reference)


def test_checkpoint_is_self_describing_and_reproduces_the_outputs(tiny_data: Dataset, tmp_path: Path) -> None:
    outcome = train_grid(replace(CONFIG, optimizers=("adam",), epochs=1), tiny_data, tmp_path)
    run = outcome.runs[0]
    loaded = load_checkpoint(tmp_path / run.name / "checkpoint.pt")
    run.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(tiny_data.x_test), run.model(tiny_data.x_test), rtol=0, atol=0)
    assert loaded.step == 3 and loaded.data == {"name": "tiny"} and loaded.optimizer is not None
    assert loaded.model_args["depth"] == 2 and loaded.config["optimizers"] == ["adam"]


def test_existing_results_are_not_overwritten_and_resume_needs_results(tiny_data: Dataset, tmp_path: Path) -> None:
    config = replace(CONFIG, optimizers=("adam",), epochs=1, diagnostics_every=0)
    train_grid(config, tiny_data, tmp_path)
    with pytest.raises(ProbeError, match="overwrite"):
        train_grid(config, tiny_data, tmp_path)
    with pytest.raises(ProbeError, match="Nothing to resume"):
        train_grid(config, tiny_data, tmp_path / "empty", resume=True)


def test_learning_rate_grid_and_best_of_grid() -> None:
    assert lr_grid_values(0.01, 3) == [0.1, 0.01, 0.001]
    assert lr_grid_values(1e-3, 1) == [1e-3]
    config = TrainConfig(optimizers=("adam",), learning_rates={"adam": 0.01}, lr_grid=3, depths=(2, 4), seeds=(0, 1))
    assert len(planned_runs(config)) == 12 and planned_runs(config)[0] == ("adam", 0.1, 2, 0)

    def fake(lr: float, seed: int, loss: float) -> RunResult:
        return RunResult("adam", lr, 2, seed, {}, [], [], {"epoch_train_loss": [loss]}, diverged=math.isnan(loss))

    runs = [fake(0.1, 0, 0.5), fake(0.1, 1, 0.1), fake(0.01, 0, 0.2), fake(0.01, 1, 0.5), fake(1.0, 0, math.nan)]
    mark_best_of_grid(runs)
    assert [run.best_of_grid for run in runs] == [True, True, False, False, False]


def test_config_round_trip_and_validation() -> None:
    config = TrainConfig(optimizers=("adam", "sgd"), depths=(2, 8), learning_rates={"adam": 0.01})
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ProbeError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ProbeError, match="epochs"):
        TrainConfig(epochs=0)


def test_first_ctrl_c_becomes_a_stop_request() -> None:
    import os
    import signal

    from landscape_probe.training.run_queue import stop_on_interrupt

    before = signal.getsignal(signal.SIGINT)
    with stop_on_interrupt() as should_stop:
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGINT)
        assert should_stop()
    assert signal.getsignal(signal.SIGINT) is before


def test_records_copied_in_blocks_equal_records_copied_every_step(monkeypatch):
    """Per-step numbers wait on the device; how often they are copied changes nothing recorded."""
    import landscape_probe as lp
    from landscape_probe.training import recorder

    def records(flush_every: int) -> dict:
        monkeypatch.setattr(recorder, "FLUSH_EVERY", flush_every)
        result = lp.train("mlp", "synthetic:task=classification,n_train=120,n_test=40,in_features=6,num_classes=3", depth=3, width=8, epochs=2, batch_size=16,
                          diagnostics_every=5, optimizers="sgd", device="cpu", seeds=(0,))
        return result.runs[0].records

    every_step, blocks = records(1), records(1000)
    for name in ("loss", "gradient_norm", "weight_norm", "relative_update", "spectral_shift", "sharpness"):
        np.testing.assert_array_equal(np.asarray(blocks[name]), np.asarray(every_step[name]), err_msg=name)
    assert len(blocks["loss"]) == len(blocks["relative_update"]) == len(blocks["learning_rate"]) == 16
