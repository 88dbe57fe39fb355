"""`probe train --tensorboard DIR`: the event files read back hold exactly the run's records."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_outcomes import one_sentence_exit_2
import landscape_probe as lp
from landscape_probe.cli import app
from landscape_probe.training.records import EPOCH_RECORDS, PER_LAYER

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = ["--epochs", "1", "--batch-size", "256", "--diagnostics-every", "0", "--device", "cpu", "--no-plots"]


def scalars(folder: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar of the event files in ``folder``: tag → (steps, values)."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: ([e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)])
            for tag in events.Tags()["scalars"]}


def test_the_logged_scalars_are_the_records_of_the_results(tmp_path: Path) -> None:
    result = lp.train("mlp", "digits", optimizers=("sgd", "adam"), depth=2, width=8, epochs=2, batch_size=256,
                      diagnostics_every=3, sharpness_iterations=3, device="cpu", tensorboard=tmp_path / "tb")
    steps_per_epoch = 6  # ceil(1437 / 256) training examples of digits
    for run in result.runs:
        logged = scalars(tmp_path / "tb" / run.name)
        expected: dict[str, tuple[list[int], list[float]]] = {}
        diagnostic_steps = [int(s) for s in run.records["diagnostic_steps"]]
        for name, values in run.records.items():
            group, x = ("step", list(range(len(values))))
            if name in EPOCH_RECORDS:
                group, x = "epoch", [(e + 1) * steps_per_epoch for e in range(len(values))]
            elif len(values) == len(diagnostic_steps) and name not in ("loss", "learning_rate", "gradient_norm",
                                                                         "weight_norm", "relative_update"):
                group, x = "diagnostics", diagnostic_steps
            if name == "diagnostic_steps":
                continue
            if name in PER_LAYER:
                names = run.layer_names if PER_LAYER[name] == "layer_names" else run.normalised_layer_names
                for column, layer in enumerate(names):
                    expected[f"{group}/{name}/{layer}"] = (x, [float(v) for v in np.asarray(values)[:, column]])
            else:
                expected[f"{group}/{name}"] = (x, [float(v) for v in values])
        expected = {tag: curve for tag, curve in expected.items() if curve[0]}  # nothing logged for empty records
        assert set(logged) == set(expected)
        for tag, (x, values) in expected.items():
            assert logged[tag][0] == x, tag
            # event files store float32
            np.testing.assert_allclose(logged[tag][1], np.float32(values), rtol=0, atol=0, equal_nan=True,
                                       err_msg=tag)
        assert len(logged["step/loss"][0]) == run.steps == 2 * steps_per_epoch
        assert logged["epoch/epoch_test_accuracy"][0] == [6, 12] and len(diagnostic_steps) == 4


def test_without_tensorboard_installed_it_is_one_sentence_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    result = CliRunner().invoke(app, ["train", "--depth", "2", "--width", "8", *TINY, "--tensorboard",
                                      str(tmp_path / "tb"), "--output", str(tmp_path / "run")])
    text = one_sentence_exit_2(result)
    assert "landscape_probe[tensorboard]" in text
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
