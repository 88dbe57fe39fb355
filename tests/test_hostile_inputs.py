"""Hostile inputs: malicious files of every container kind, and hundreds of malformed ones.

Every file here goes through the CLI (``probe info`` and ``probe slice``) as a
user would give it. A malicious file's payload opens a file for writing when
unpickled; the tests check that the command refuses it with exit 2 and one
sentence, and that the file never appears. The malformed files are generated
at test time from a valid checkpoint; each must give exit 2, one sentence and
no traceback.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "sample_checkpoints"
FAST_SLICE = ["--probe-size", "8", "--scales", "0.1", "--power-iterations", "1", "--device", "cpu", "--no-plots"]


class OpensForWriting:
    """Unpickling this object opens ``target`` for writing, creating it: a stand-in for any payload."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self) -> tuple:
        return (builtins.open, (self.target, "w"))


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _rewrite_zip(source: Path, dest: Path, replace: dict[str, bytes | Callable[[bytes], bytes]]) -> None:
    """Copy a zip archive, replacing members named by their path below the archive's root folder."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            inner = info.filename.split("/", 1)[-1]
            data = old.read(info.filename)
            change = replace.get(inner, data)
            new.writestr(info.filename, change(data) if callable(change) else change)


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)).eval()


def _exported(path: Path, dynamic_batch: bool = True) -> Path:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    program = torch.export.export(_tiny_net(), (torch.randn(2, 64),), dynamic_shapes=shapes)
    torch.export.save(program, path)
    return path


def _pt2_with_pickled_weight(path: Path, target: Path) -> None:
    def config(old: bytes) -> bytes:
        table = json.loads(old)
        table["config"]["0.weight"]["use_pickle"] = True
        return json.dumps(table).encode()

    _rewrite_zip(
        _exported(path.with_name("valid.pt2")),
        path,
        {"data/weights/model_weights_config.json": config, "data/weights/weight_0": _torch_bytes(OpensForWriting(target))},
    )


def _pt2_with_pickled_sample_inputs(path: Path, target: Path) -> None:
    _rewrite_zip(
        _exported(path.with_name("valid.pt2")), path, {"data/sample_inputs/model.pt": _torch_bytes(OpensForWriting(target))}
    )


def _torchscript_with_payload(path: Path, target: Path) -> None:
    scripted = path.with_name("valid_ts.pt")
    torch.jit.save(torch.jit.script(_tiny_net()), scripted)
    _rewrite_zip(scripted, path, {"data.pkl": pickle.dumps(OpensForWriting(target), protocol=2)})


def _safetensors_with_metadata(path: Path, target: Path) -> None:
    payload = pickle.dumps(OpensForWriting(target)).hex()
    save_file({"w": torch.zeros(2, 2)}, str(path), metadata={"pickle": payload})


MALICIOUS_CHECKPOINTS: dict[str, Callable[[Path, Path], None]] = {
    "pickle": lambda p, t: p.write_bytes(pickle.dumps({"w": OpensForWriting(t)}, protocol=2)),
    "torch zip": lambda p, t: torch.save({"weight": torch.zeros(2), "hook": OpensForWriting(t)}, p),
    "torch zip .bin": lambda p, t: torch.save({"weight": torch.zeros(2), "hook": OpensForWriting(t)}, p),
    "nested container": lambda p, t: torch.save({"state_dict": {"a": [torch.zeros(1), {"b": OpensForWriting(t)}]}}, p),
    "torchscript": _torchscript_with_payload,
    ".pt2 use_pickle weight": _pt2_with_pickled_weight,
    ".pt2 pickled sample_inputs": _pt2_with_pickled_sample_inputs,
    "safetensors metadata": _safetensors_with_metadata,
}
SUFFIX = {"torch zip .bin": ".bin", ".pt2 use_pickle weight": ".pt2", ".pt2 pickled sample_inputs": ".pt2"}


def _one_sentence_exit_2(result) -> None:
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert text.startswith("Error:") and result.output.count("\nError:") == 0 and text.endswith("."), text
    assert "Traceback" not in text


@pytest.mark.parametrize("kind", list(MALICIOUS_CHECKPOINTS))
def test_malicious_checkpoints_are_refused_and_run_nothing(tmp_path: Path, kind: str) -> None:
    target, path = tmp_path / "created_by_payload", tmp_path / f"evil{SUFFIX.get(kind, '.pt')}"
    MALICIOUS_CHECKPOINTS[kind](path, target)
    out = tmp_path / "out.h5"
    commands = (
        ["info", str(path)],
        ["slice", str(path), "--data", "digits", "--output", str(out), *FAST_SLICE],
        ["slice", str(SAMPLES / "mlp2_digits.pt"), "--direction", f"checkpoint:{path}", "--output", str(out), *FAST_SLICE],
    )
    for command in commands:
        result = runner.invoke(app, command)
        if kind == "safetensors metadata" and command[0] == "info":
            assert result.exit_code == 0 and "│ w " in result.output  # bare weights are listed; metadata is never unpickled
        else:
            _one_sentence_exit_2(result)
        assert not target.exists(), f"{kind}: the payload ran during {command[0]}"
    assert not out.exists()


@pytest.mark.parametrize("kind", [".pt2 use_pickle weight", ".pt2 pickled sample_inputs", "torch zip"])
def test_the_payloads_are_live_when_trusted(tmp_path: Path, kind: str) -> None:
    """The same files do run their payload under --trust-checkpoint: the refusal above is what protects."""
    target, path = tmp_path / "created_by_payload", tmp_path / f"evil{SUFFIX.get(kind, '.pt')}"
    MALICIOUS_CHECKPOINTS[kind](path, target)
    runner.invoke(app, ["info", str(path), "--trust-checkpoint"])
    assert target.exists()


def test_refusals_name_the_offending_member(tmp_path: Path) -> None:
    target = tmp_path / "created_by_payload"
    _pt2_with_pickled_weight(tmp_path / "a.pt2", target)
    _pt2_with_pickled_sample_inputs(tmp_path / "b.pt2", target)
    _torchscript_with_payload(tmp_path / "c.pt", target)
    expected = {"a.pt2": "model_weights_config.json stores '0.weight'", "b.pt2": "sample_inputs/model.pt", "c.pt": "data.pkl holds the Python object io.open"}
    for name, words in expected.items():
        result = runner.invoke(app, ["info", str(tmp_path / name)])
        assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output


MALICIOUS_DATA: dict[str, Callable[[Path, Path], None]] = {
    "npz object array": lambda p, t: np.savez(p, x=np.array([OpensForWriting(t)], dtype=object), y=np.zeros(1)),
    "pt pickle": lambda p, t: torch.save({"x": OpensForWriting(t), "y": torch.zeros(1)}, p),
}


@pytest.mark.parametrize("kind", list(MALICIOUS_DATA))
def test_malicious_data_files_are_refused_and_run_nothing(tmp_path: Path, kind: str) -> None:
    target, path = tmp_path / "created_by_payload", tmp_path / ("evil.npz" if "npz" in kind else "evil.pt")
    MALICIOUS_DATA[kind](path, target)
    out = tmp_path / "out.h5"
    result = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--data", str(path), "--output", str(out), *FAST_SLICE])
    _one_sentence_exit_2(result)
    assert not target.exists() and not out.exists()


def test_valid_export_archives_still_load(tmp_path: Path) -> None:
    path = _exported(tmp_path / "ok.pt2")
    x = torch.randn(5, 64)
    assert torch.allclose(load_checkpoint(path).model(x), _tiny_net()(x))


def test_export_with_a_fixed_batch_size_runs_in_chunks(tmp_path: Path) -> None:
    """Exported for batches of exactly 2, the program still gives every example its own outputs and gradients."""
    model = load_checkpoint(_exported(tmp_path / "fixed.pt2", dynamic_batch=False)).model
    reference = _tiny_net()
    for n in (1, 2, 3, 5):
        x = torch.randn(n, 64, generator=torch.Generator().manual_seed(n))
        assert torch.allclose(model(x), reference(x), atol=1e-6)
    x = torch.randn(5, 64)
    grads = torch.autograd.grad(model(x).square().sum(), list(model.parameters()))
    expected = torch.autograd.grad(reference(x).square().sum(), list(reference.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, expected))
    out = tmp_path / "fixed.h5"
    result = runner.invoke(app, ["slice", str(tmp_path / "fixed.pt2"), "--data", "digits", "--output", str(out), *FAST_SLICE])
    assert result.exit_code == 0, result.output
    assert out.is_file()
