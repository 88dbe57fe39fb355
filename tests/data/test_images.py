"""--data images:DIR: class sub-folders of PNG/JPEG files as a classification data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import landscape_probe as lp
from landscape_probe.cli import app
from landscape_probe.data.datasets import load_dataset, load_dataset_spec, parse_data_spec
from landscape_probe.errors import ProbeError
from tests.cli_outcomes import one_sentence_exit_2

COLOURS = {"blue": (0, 0, 255), "red": (255, 0, 0)}


def _folder(tmp_path: Path, per_class: int = 5, mode: str = "RGB") -> Path:
    """Solid-colour images of varied sizes: red ones in red/, blue ones in blue/."""
    root = tmp_path / "pictures"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("RGB", (10 + i, 12), colour).convert(mode)
            image.save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "red" / "notes.txt").write_text("not an image")
    return root


def test_classes_are_the_sorted_folders_and_pixels_are_normalised_as_given(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    data = load_dataset("images", path=str(root), size=4, mean=0.5, std=0.25, test_fraction=0.2)
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])
    assert x.shape == (10, 3, 4, 4) and data.num_classes == 2 and data.task == "classification"
    for label, colour in enumerate(COLOURS.values()):  # blue is class 0, red class 1
        expected = (torch.tensor(colour, dtype=torch.float32) / 255 - 0.5) / 0.25
        pixels = x[y == label].permute(0, 2, 3, 1).reshape(-1, 3)
        assert torch.allclose(pixels, expected.expand_as(pixels), atol=2 / 255 / 0.25)  # JPEG rounds a little
    assert len(data.y_test) == 2


def test_default_statistics_are_the_training_splits_and_the_spec_reloads_them(tmp_path: Path) -> None:
    root = _folder(tmp_path, mode="L")
    data = load_dataset("images", path=str(root), size=3, seed=1)
    assert data.x_train.shape[1] == 1  # grey files give one channel
    assert abs(float(data.x_train.mean())) < 1e-5 and float(data.x_train.std()) == pytest.approx(1.0, rel=1e-3)
    again = load_dataset_spec(data.spec)
    assert torch.equal(again.x_test, data.x_test) and again.spec["mean"] == data.spec["mean"]


def test_the_spec_takes_the_folder_first(tmp_path: Path) -> None:
    assert parse_data_spec(f"images:{tmp_path},size=16") == ("images", {"path": str(tmp_path), "size": 16})
    assert parse_data_spec("images:path=x,size=8") == ("images", {"path": "x", "size": 8})


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "size", "channels"])
def test_bad_folders_are_one_sentence(tmp_path: Path, case: str) -> None:
    root = _folder(tmp_path)
    options: dict = {"path": str(root)}
    if case == "missing":
        options["path"] = str(tmp_path / "nowhere")
    elif case == "empty":
        (tmp_path / "empty" / "a").mkdir(parents=True)
        options["path"] = str(tmp_path / "empty")
    elif case == "corrupt":
        (root / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    elif case == "size":
        options["size"] = 0
    else:
        options["mean"] = [0.5, 0.5]
    with pytest.raises(ProbeError) as error:
        load_dataset("images", **options)
    assert "\n" not in str(error.value) and str(error.value).endswith((".", ")."))


def test_a_cnn_trains_on_the_folder_and_its_checkpoint_slices_with_no_other_option(tmp_path: Path) -> None:
    root = _folder(tmp_path, per_class=8)
    runs = lp.train("cnn:depth=1,channels=2", f"images:{root},size=6", optimizers="adam", epochs=1, batch_size=4,
                    output=tmp_path / "runs", device="cpu")
    assert runs.runs[0].steps > 0
    checkpoint = next((tmp_path / "runs").glob("*/checkpoint.pt"))
    runner = CliRunner()
    result = runner.invoke(app, ["slice", str(checkpoint), "--points", "3", "--no-plots", "--device", "cpu",
                                 "-o", str(tmp_path / "s.h5")])
    assert result.exit_code == 0, result.output
    assert np.isfinite(lp.load(tmp_path / "s.h5").relative_gradient_change).all()
    text = one_sentence_exit_2(runner.invoke(app, ["slice", str(checkpoint), "--data", f"images:{tmp_path}/none"]))
    assert "does not exist" in text
