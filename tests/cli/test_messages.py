"""Refusals that point the user the right way (each found by an exploratory tester pointing the wrong way)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from landscape_probe.cli import app
from tests.cli_outcomes import one_sentence_exit_2

runner = CliRunner()
SAMPLE = str(Path(__file__).resolve().parents[2] / "sample_checkpoints" / "mlp2_digits.pt")


def test_show_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["show", str(tmp_path)]))
    assert "is a folder" in text and "does not exist" not in text


def test_a_missing_trajectory_folder_says_it_does_not_exist(tmp_path: Path) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["plane", SAMPLE, "--trajectory", str(tmp_path / "nowhere"),
                                                   "--device", "cpu", "--no-plots", "-o", str(tmp_path / "p.h5")]))
    assert "does not exist" in text and "snapshots" not in text


def test_seeds_that_are_not_integers_get_an_example_of_seeds() -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["train", "--seeds", "a", "--no-plots"]))
    assert "--seeds" in text and "e.g. 0,1,2" in text


def test_a_missing_hessian_file_names_the_option_that_writes_one(tmp_path: Path) -> None:
    text = one_sentence_exit_2(runner.invoke(app, ["slice", SAMPLE, "--direction",
                                                   f"hessian:{tmp_path / 'missing.h5'}:1", "--device", "cpu",
                                                   "--no-plots", "-o", str(tmp_path / "s.h5")]))
    assert "--output FILE" in text and "--out " not in text
    assert runner.invoke(app, ["hessian", "--help"]).output.count("--output") >= 1  # the option it names exists
