"""Data sets: splits, seeds, the teacher–student construction, user files and clear errors."""

from __future__ import annotations

import pickle
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape_probe.data.datasets import (
    load_dataset,
    load_dataset_spec,
    parse_data_spec,
    probe_set,
)
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import MLP, build_model, complete_model_args
from landscape_probe.data.compatibility import check_model_accepts
from landscape_probe.data.synthetic import teacher


def _sorted_rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple]:
    return sorted(tuple(row) + (label,) for row, label in zip(x.tolist(), y.tolist()))


def test_digits_split_is_disjoint_complete_and_seeded() -> None:
    from sklearn.datasets import load_digits

    data = load_dataset("digits", seed=3)
    assert (len(data.x_train), len(data.x_test)) == (1438, 359)
    bunch = load_digits()
    everything = _sorted_rows(torch.tensor(bunch.data / 16.0, dtype=torch.float32), torch.tensor(bunch.target))
    both = _sorted_rows(torch.cat([data.x_train, data.x_test]), torch.cat([data.y_train, data.y_test]))
    assert both == everything
    assert torch.equal(load_dataset("digits", seed=3).x_test, data.x_test)
    assert not torch.equal(load_dataset("digits", seed=4).x_test, data.x_test)
    assert data.spec == {"name": "digits", "seed": 3, "test_fraction": 0.2}


@pytest.fixture(scope="module")
def mnist1d_and_rng_states() -> tuple:
    before = (random.getstate(), np.random.get_state()[1].copy())
    data = load_dataset("mnist1d", seed=0)
    after = (random.getstate(), np.random.get_state()[1].copy())
    return data, before, after


def test_mnist1d_has_its_published_shape(mnist1d_and_rng_states: tuple) -> None:
    data, _, _ = mnist1d_and_rng_states
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.num_classes == 10 and set(data.y_train.tolist()) == set(range(10))
    assert data.spec == {"name": "mnist1d", "seed": 0}


def test_mnist1d_leaves_global_rngs_alone_and_reloads_identically(mnist1d_and_rng_states: tuple) -> None:
    data, before, after = mnist1d_and_rng_states
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    again = load_dataset_spec(data.spec)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    again.x_train.zero_()
    assert load_dataset("mnist1d", seed=0).x_train.abs().sum() > 0


def _teacher_outputs_by_hand(seed: int, x: torch.Tensor, num_outputs: int) -> torch.Tensor:
    network = teacher(seed, x.shape[1], num_outputs)
    h = x.double()
    for linear in network.hidden:
        h = torch.tanh(h @ linear.weight.double().T + linear.bias.double())
    return h @ network.output.weight.double().T + network.output.bias.double()


def test_synthetic_regression_targets_are_teacher_outputs_plus_noise() -> None:
    exact = load_dataset("synthetic", seed=5, task="regression", n_train=64, n_test=16, dim=6, outputs=2, noise=0.0)
    assert exact.x_train.shape == (64, 6) and exact.y_train.shape == (64, 2) and exact.num_outputs == 2
    assert torch.allclose(exact.y_train.double(), _teacher_outputs_by_hand(5, exact.x_train, 2), atol=1e-5)
    assert torch.allclose(exact.y_test.double(), _teacher_outputs_by_hand(5, exact.x_test, 2), atol=1e-5)

    noisy = load_dataset("synthetic", seed=5, task="regression", n_train=4000, n_test=16, in_features=6, noise=0.5)
    residual = noisy.y_train.double() - _teacher_outputs_by_hand(5, noisy.x_train, 1)
    assert residual.std().item() == pytest.approx(0.5, rel=0.05)
    assert abs(residual.mean().item()) < 0.05
    assert noisy.x_train.std().item() == pytest.approx(1.0, rel=0.05)


def test_synthetic_classification_labels_are_the_teachers_argmax() -> None:
    data = load_dataset("synthetic", seed=1, task="classification", n_train=200, n_test=50, num_classes=5, noise=0.0)
    assert data.task == "classification" and data.num_classes == 5 and data.y_train.dtype == torch.int64
    assert torch.equal(data.y_train, _teacher_outputs_by_hand(1, data.x_train, 5).argmax(1))
    assert not any(torch.equal(row, other) for row in data.x_test[:5] for other in data.x_train)


def test_synthetic_is_seeded_and_its_spec_reloads_it() -> None:
    data = load_dataset("synthetic", seed=2, task="classification", n_train=32, n_test=8)
    assert torch.equal(load_dataset_spec(data.spec).y_train, data.y_train)
    assert not torch.equal(load_dataset("synthetic", seed=3, task="classification", n_train=32).x_train, data.x_train)


def _save(path: Path, payload: object) -> Path:
    if path.suffix == ".npz":
        np.savez(path, **payload)
    else:
        torch.save(payload, path)
    return path


def test_npz_with_integer_targets_is_a_seeded_classification_split(tmp_path: Path) -> None:
    x, y = np.arange(50, dtype=np.float64).reshape(25, 2), np.arange(25) % 3
    path = _save(tmp_path / "d.npz", {"x": x, "y": y})
    data = load_dataset(str(path), seed=1, test_fraction=0.2)
    assert data.task == "classification" and data.num_classes == 3 and data.x_train.dtype == torch.float32
    assert (len(data.x_train), len(data.x_test)) == (20, 5)
    assert _sorted_rows(torch.cat([data.x_train, data.x_test]), torch.cat([data.y_train, data.y_test])) == _sorted_rows(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    )
    assert torch.equal(load_dataset_spec(data.spec).x_test, data.x_test)


def test_npz_with_a_test_split_and_float_targets_is_regression(tmp_path: Path) -> None:
    arrays = {"x": np.ones((4, 3)), "y": np.full(4, 0.5), "x_test": np.zeros((2, 3)), "y_test": np.zeros(2)}
    data = load_dataset(str(_save(tmp_path / "d.npz", arrays)))
    assert data.task == "regression" and data.num_classes is None and data.num_outputs == 1
    assert torch.equal(data.x_test, torch.zeros(2, 3)) and torch.equal(data.y_train, torch.full((4,), 0.5))


@pytest.mark.parametrize(
    "payload",
    [
        {"x": torch.randn(10, 4), "y": torch.arange(10) % 2},
        (torch.randn(10, 4), torch.arange(10) % 2),
        (torch.randn(8, 4), torch.arange(8) % 2, torch.randn(2, 4), torch.tensor([0, 1])),
    ],
    ids=["dict", "pair", "four"],
)
def test_pt_files_load_as_dict_or_tuple(tmp_path: Path, payload: object) -> None:
    data = load_dataset(str(_save(tmp_path / "d.pt", payload)), seed=0)
    assert data.task == "classification" and data.num_classes == 2
    assert (len(data.x_train), len(data.x_test)) == (8, 2) and data.input_shape == (4,)


class _WritesAFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.target, "pwned"))


@pytest.mark.parametrize(
    ("name", "payload", "words"),
    [
        ("missing.npz", None, "does not exist"),
        ("d.csv", "x,y", "must end in .npz or .pt"),
        ("d.npz", {"x": np.ones((3, 2))}, "no array y"),
        ("d.npz", {"x": np.ones((3, 2)), "y": np.ones(4)}, "3 inputs but 4 targets"),
        ("d.npz", {"x": np.ones((3, 2)), "y": np.array(["a", "b", "c"])}, "dtype"),
        ("d.npz", {"x": np.ones((3, 2)), "y": np.ones(3), "x_test": np.ones((1, 2))}, "only one of"),
        ("d.npz", {"x": np.ones((5, 2)), "y": -np.ones(5, dtype=int)}, ">= 0"),
        ("d.pt", {"x": [1.0, 2.0], "y": torch.ones(2)}, "not a tensor"),
        ("d.pt", torch.ones(3), "dict with keys x and y"),
        ("d.pt", {"x": torch.ones(4, 2, dtype=torch.complex64), "y": torch.ones(4)}, "complex"),
    ],
)
def test_bad_user_files_raise_one_clear_sentence(tmp_path: Path, name: str, payload: object, words: str) -> None:
    path = tmp_path / name
    if isinstance(payload, str):
        path.write_text(payload)
    elif payload is not None:
        _save(path, payload)
    with pytest.raises(ProbeError, match=words):
        load_dataset(str(path))


def test_damaged_and_malicious_pt_files_are_refused_without_running_code(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ProbeError, match="could not be read"):
        load_dataset(str(noise))
    target, evil = tmp_path / "created.txt", tmp_path / "evil.pt"
    with evil.open("wb") as handle:
        pickle.dump({"x": _WritesAFile(target), "y": 1}, handle)
    with pytest.raises(ProbeError, match="weights_only"):
        load_dataset(str(evil))
    assert not target.exists()


def test_unknown_names_and_options_are_refused() -> None:
    with pytest.raises(ProbeError, match="Unknown data set 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ProbeError, match="does not take the option colour; it takes test_fraction"):
        load_dataset("digits", colour="red")
    with pytest.raises(ProbeError, match="synthetic task"):
        load_dataset("synthetic", task="ranking")
    with pytest.raises(ProbeError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)


def test_parse_data_spec_reads_options_and_keeps_file_paths_whole(tmp_path: Path) -> None:
    assert parse_data_spec("synthetic:task=regression,n_train=512,noise=0.2") == (
        "synthetic",
        {"task": "regression", "n_train": 512, "noise": 0.2},
    )
    assert parse_data_spec("digits") == ("digits", {})
    odd = _save(tmp_path / "a:b.npz", {"x": np.ones((5, 1)), "y": np.arange(5)})
    assert parse_data_spec(str(odd)) == (str(odd), {})
    with pytest.raises(ProbeError, match="key=value"):
        parse_data_spec("synthetic:n_train")


def test_probe_set_is_a_fixed_seeded_subset() -> None:
    data = load_dataset("synthetic", seed=0, n_train=50, n_test=20, in_features=3)
    x, y = probe_set(data, 10, seed=4)
    assert x.shape == (10, 3) and y.shape == (10, 1)
    rows = [next(i for i in range(50) if torch.equal(data.x_train[i], row)) for row in x]
    assert rows == sorted(set(rows)) and all(torch.equal(data.y_train[i], t) for i, t in zip(rows, y))
    assert torch.equal(probe_set(data, 10, seed=4)[0], x)
    assert not torch.equal(probe_set(data, 10, seed=5)[0], x)
    assert torch.equal(probe_set(data, 50, seed=4)[0], data.x_train)
    assert torch.equal(probe_set(data, None, seed=4)[0], data.x_train)
    assert torch.equal(probe_set(data, 500, seed=4)[0], data.x_train)
    assert torch.equal(probe_set(data, 20, seed=4, split="test")[1], data.y_test)
    with pytest.raises(ProbeError, match="split"):
        probe_set(data, 10, seed=0, split="validation")
    with pytest.raises(ProbeError, match="at least one"):
        probe_set(data, 0, seed=0)


def test_check_model_accepts_names_both_shapes_and_output_sizes() -> None:
    digits = load_dataset("digits")
    synthetic = load_dataset("synthetic", n_train=8, n_test=4, in_features=5, num_outputs=2)
    check_model_accepts(build_model(complete_model_args({"name": "cnn"}, digits)), digits)
    with pytest.raises(ProbeError, match=r"fails on two examples of 'digits' \(shape \(64,\), float32\).*2x64 and 5x4.*it takes 5 input features"):
        check_model_accepts(MLP(5, 2, depth=2, width=4), digits)
    with pytest.raises(ProbeError, match=r"\(shape \(5,\), float32\).*it takes examples of shape \(1, 8, 8\)"):
        check_model_accepts(build_model(complete_model_args({"name": "cnn"}, digits)), synthetic)
    with pytest.raises(ProbeError, match="gives 3 outputs.*needs 2"):
        check_model_accepts(MLP(5, 3, depth=1), synthetic)


def test_check_model_accepts_leaves_the_model_and_its_statistics_as_they_were() -> None:
    data = load_dataset("synthetic", n_train=8, n_test=4, in_features=5)
    model = MLP(5, 1, depth=2, width=4, norm="batch").train()
    running_mean = model.norms[0].running_mean.clone()
    check_model_accepts(model, data)
    assert model.training and torch.equal(model.norms[0].running_mean, running_mean)
    check_model_accepts(nn.Sequential(nn.Linear(5, 1)).double(), data)


def test_check_model_accepts_runs_torch_export_modules_that_cannot_switch_modes() -> None:
    digits = load_dataset("digits")
    model = MLP(64, 10, depth=2, width=4).eval()
    exported = torch.export.export(model, (torch.randn(2, 64),)).module()
    check_model_accepts(exported, digits)
    with pytest.raises(ProbeError, match=r"shape \(5,\)"):
        check_model_accepts(exported, load_dataset("synthetic", n_train=8, n_test=4, in_features=5))


def test_digits_read_from_the_shipped_file_equal_load_digits():
    from sklearn.datasets import load_digits

    from landscape_probe.data.datasets import digits_arrays

    pixels, labels = digits_arrays()
    bunch = load_digits()
    np.testing.assert_array_equal(pixels, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)


def test_a_user_file_without_a_test_split_is_probed_whole(tmp_path: Path) -> None:
    x, y = np.random.default_rng(0).normal(size=(256, 3)), np.arange(256) % 4
    data = load_dataset(str(_save(tmp_path / "d.npz", {"x": x, "y": y})), seed=0)
    probe_x, probe_y = probe_set(data, 256, seed=0)
    assert torch.equal(probe_x, torch.tensor(x, dtype=torch.float32)) and torch.equal(probe_y, torch.tensor(y))
    assert len(probe_set(data, 100, seed=0)[0]) == 100
    assert len(probe_set(data, 300, seed=0)[0]) == 256
    assert len(probe_set(data, None, seed=0, split="test")[0]) == round(0.2 * 256)


class _TokenClassifier(nn.Module):
    def __init__(self, vocabulary: int = 50, length: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary, 8)
        self.output = nn.Linear(8 * length, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.output(self.embed(ids).flatten(1))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_inputs_stay_integers_for_an_embedding(tmp_path: Path, dtype: type) -> None:
    ids = np.random.default_rng(1).integers(0, 50, size=(40, 16)).astype(dtype)
    path = _save(tmp_path / "tokens.npz", {"x": ids, "y": np.arange(40) % 3, "x_test": ids[:8], "y_test": np.arange(8) % 3})
    data = load_dataset(str(path))
    assert data.x_train.dtype == torch.int64 and torch.equal(data.x_train, torch.tensor(ids.astype(np.int64)))
    check_model_accepts(_TokenClassifier(), data)
    with pytest.raises(ProbeError, match=r"\(shape \(16,\), int64\).*it takes 32 input features; integer inputs are given to the model as they are"):
        check_model_accepts(MLP(32, 3, depth=2, width=4), data)


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"x": np.array([[0.0, np.nan], [1, 1], [1, 1], [1, 1]]), "y": np.arange(4)}, "inputs of '.*' hold 1 NaN or infinite values"),
        ({"x": np.ones((4, 2)), "y": np.array([0.0, 1.0, np.inf, 2.0])}, "targets of '.*' hold 1 NaN or infinite values"),
        ({"x": np.ones((4, 2)), "y": np.arange(4), "x_test": np.full((2, 2), -np.inf), "y_test": np.arange(2)}, "hold 4 NaN"),
    ],
    ids=["nan input", "inf target", "inf test inputs"],
)
def test_non_finite_data_are_refused(tmp_path: Path, arrays: dict, words: str) -> None:
    with pytest.raises(ProbeError, match=words):
        load_dataset(str(_save(tmp_path / "d.npz", arrays)), test_fraction=0.5)


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_data_files_with_a_bad_checksum_are_refused(tmp_path: Path, suffix: str) -> None:
    path = _save(tmp_path / f"d{suffix}", {"x": np.ones((6, 2)), "y": np.arange(6)} if suffix == ".npz" else {"x": torch.ones(6, 2), "y": torch.arange(6)})
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.file_size > 40)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + info.file_size - 1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ProbeError, match="checksum of its member .* does not match"):
        load_dataset(str(path))


def test_object_arrays_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.arange(2))
    with pytest.raises(ProbeError, match="holds Python objects \\(an object array\\), which are never unpickled"):
        load_dataset(str(path))


TEXT_MODEL = """
import torch
from torch import nn


class TextClassifier(nn.Module):
    def __init__(self, vocabulary=40, width=16, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.mix = nn.Linear(width, width)
        self.output = nn.Linear(width, classes)

    def forward(self, ids):
        return self.output(torch.tanh(self.mix(self.embed(ids))).mean(dim=1))


def make():
    torch.manual_seed(0)
    return TextClassifier()
"""


def test_a_text_model_is_sliced_on_integer_token_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding → Linear → Linear from a state_dict and --arch, probed on a .npz of token ids.

    (A TransformerEncoder here fails inside the Hessian-vector products: CPU
    flash attention has no double backward, a matter for the slicing engine.)
    """
    from typer.testing import CliRunner

    from landscape_probe.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "textnet.py").write_text(TEXT_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    import textnet

    torch.save(textnet.make().state_dict(), tmp_path / "text.pt")
    ids = np.random.default_rng(0).integers(0, 40, size=(24, 12))
    _save(tmp_path / "tokens.npz", {"x": ids, "y": np.arange(24) % 3})
    result = CliRunner().invoke(app, ["slice", "text.pt", "--arch", "textnet:make", "--data", "tokens.npz", "--probe-size", "24",
                                      "--scales", "0.01,0.1", "--power-iterations", "2", "--device", "cpu", "--no-plots", "--output", "text.h5"])
    assert result.exit_code == 0, result.output
    import h5py

    with h5py.File(tmp_path / "text.h5", "r") as h5:
        assert h5.attrs["probe_size"] == 24 and np.isfinite(h5["loss"][()]).all()


def test_an_archive_that_would_unpack_beyond_memory_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((1000, 50)), y=np.zeros(1000, dtype=np.int64))
    assert path.stat().st_size < 5_000  # 408,000 bytes of zeros compress to almost nothing
    monkeypatch.setattr("landscape_probe.checkpoints.audit.physical_memory", lambda: 100_000)
    with pytest.raises(ProbeError, match=r"would unpack to 0.0 GiB, more than this machine's 0.0 GiB of memory"):
        load_dataset(str(path))
