"""probe train --save-every and probe plane --trajectory: snapshots, principal directions, the projected path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError
from landscape_probe.landscape.trajectory_pca import covering_range, trajectory_plane
from landscape_probe.training.trajectory import read_trajectory
from tests.cli_outcomes import one_sentence_exit_2

runner = CliRunner()


def test_the_principal_plane_is_the_svd_of_the_centred_path_and_places_each_snapshot() -> None:
    generator = torch.Generator().manual_seed(0)
    centre = {"a": torch.randn(3, 4, generator=generator, dtype=torch.float64),
              "b": torch.randn(5, generator=generator, dtype=torch.float64)}
    states = [{k: v + torch.randn(v.shape, generator=generator, dtype=torch.float64) * (t + 1) / 4
               for k, v in centre.items()} for t in range(6)]
    plane = trajectory_plane(states, centre, ["a", "b"])
    rows = np.stack([np.concatenate([(s[k] - centre[k]).numpy().ravel() for k in ("a", "b")]) for s in states])
    _, singular, right = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
    d1 = np.concatenate([plane.d1[k].numpy().ravel() for k in ("a", "b")])
    d2 = np.concatenate([plane.d2[k].numpy().ravel() for k in ("a", "b")])
    assert abs(d1 @ right[0]) == pytest.approx(1.0, abs=1e-12) and abs(d2 @ right[1]) == pytest.approx(1.0, abs=1e-12)
    assert plane.explained_variance_ratio == pytest.approx(singular[:2] ** 2 / (singular**2).sum(), rel=1e-12)
    for t, row in enumerate(rows):
        a, b = plane.coordinates[t]
        assert (a, b) == pytest.approx((row @ d1, row @ d2), rel=1e-12)
        assert plane.residual[t] == pytest.approx(np.linalg.norm(row - a * d1 - b * d2), rel=1e-9, abs=1e-12)
    assert plane.residual.max() > 0  # six random steps in 17 dimensions do not lie in a plane


def test_a_path_on_one_line_spans_no_plane() -> None:
    centre = {"w": torch.zeros(4, dtype=torch.float64)}
    states = [{"w": torch.full((4,), float(t), dtype=torch.float64)} for t in range(4)]
    with pytest.raises(ProbeError, match="one line"):
        trajectory_plane(states, centre, ["w"])


def test_covering_range_holds_the_path_and_the_origin() -> None:
    values = covering_range(np.array([-2.0, -0.5, -1.0]), points=5)
    assert values[0] < -2.0 and values[-1] > 0.0 and len(values) == 5


def test_snapshots_are_saved_every_k_steps_and_at_the_end_and_a_plane_draws_their_path(tmp_path: Path) -> None:
    runs = lp.train("mlp", "digits", optimizers="sgd", depth=2, width=16, epochs=2, save_every=10,
                    diagnostics_every=0, device="cpu", output=tmp_path / "runs")
    run = runs.runs[0]
    folder = tmp_path / "runs" / run.name
    steps, states = read_trajectory(folder)
    assert steps == [*range(0, run.steps, 10), run.steps]
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    final = load_file(str(folder / "trajectory" / f"step_{run.steps:08d}.safetensors"))
    assert all(torch.equal(final[k], v) for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    out = tmp_path / "path.h5"
    result = runner.invoke(app, ["plane", str(folder / "checkpoint.pt"), "--trajectory", str(folder),
                                 "--probe-size", "64", "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    plane = lp.load(out)
    assert plane.settings["direction_x"] == "pca" and plane.trajectory_steps.tolist() == steps
    a, b = plane.trajectory_coordinates[:, 0], plane.trajectory_coordinates[:, 1]
    assert plane.x_coordinates[0] < a.min() and plane.x_coordinates[-1] > a.max()
    assert plane.y_coordinates[0] < b.min() and plane.y_coordinates[-1] > b.max()
    assert np.allclose(plane.trajectory_coordinates[-1], 0.0, atol=1e-5)  # the last snapshot is the centre
    assert "principal plane" in runner.invoke(app, ["show", str(out)]).output


def test_too_few_snapshots_is_one_sentence(tmp_path: Path) -> None:
    runs = lp.train("mlp", "digits", optimizers="sgd", depth=2, width=16, epochs=1, save_every=1000,
                    diagnostics_every=0, device="cpu", output=tmp_path / "runs")
    folder = tmp_path / "runs" / runs.runs[0].name
    text = one_sentence_exit_2(runner.invoke(app, ["plane", str(folder / "checkpoint.pt"), "--trajectory",
                                                   str(folder), "-o", str(tmp_path / "p.h5")]))
    assert "--save-every" in text and not (tmp_path / "p.h5").exists()
    with pytest.raises(ProbeError, match="--save-every"):
        lp.train("mlp", "digits", optimizers="sgd", depth=2, epochs=1, save_every=-1, device="cpu")
