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
import errno
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from landscape_probe.atomic import atomic_path
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError

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
    """Exit 2, and on stderr one sentence starting ``Error:`` (rich may wrap it over lines), no traceback."""
    text = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.output
    assert text.startswith("Error:") and " Error:" not in text and text.endswith("."), text
    assert "Traceback" not in result.output


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


# ---------------------------------------------------------------- kills and full disks


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed_on_the_next_write(tmp_path: Path) -> None:
    final = tmp_path / "results.h5"
    dead = tmp_path / f".results.h5.{_dead_pid()}.abcd1234.tmp"
    alive = tmp_path / f".results.h5.{os.getppid()}.abcd1234.tmp"
    mine = tmp_path / f".results.h5.{os.getpid()}.abcd1234.tmp"
    other = tmp_path / f".other.h5.{_dead_pid()}.abcd1234.tmp"
    for path in (dead, alive, mine, other):
        path.write_bytes(b"partial")
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"complete")
    assert final.read_bytes() == b"complete"
    assert not dead.exists() and alive.exists() and mine.exists() and other.exists()


def test_a_writer_killed_mid_write_leaves_no_file_and_its_temporary_goes_on_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    writer = (
        "import sys, time; from landscape_probe.atomic import atomic_path\n"
        f"with atomic_path({str(out)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half a file'); print('writing', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, env=env)
    assert child.stdout.readline() == b"writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists() and len(_temporaries(tmp_path)) == 1
    result = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(out), *FAST_SLICE])
    assert result.exit_code == 0, result.output
    assert out.is_file() and _temporaries(tmp_path) == []


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_slice_gives_one_sentence_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h5py.Group, "create_dataset", _disk_full)
    out = tmp_path / "out.h5"
    result = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(out), *FAST_SLICE])
    _one_sentence_exit_2(result)
    assert "the disk is full, so nothing was written" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_while_saving_a_checkpoint_leaves_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landscape_probe.checkpoints.load import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the previous checkpoint")
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(ProbeError, match="Cannot write '.*checkpoint.pt': the disk is full, so nothing was written"):
        save_checkpoint(path, nn.Linear(2, 2), {"name": "mlp"})
    assert path.read_bytes() == b"the previous checkpoint" and _temporaries(tmp_path) == []


def test_a_full_disk_during_train_gives_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h5py.Group, "create_dataset", _disk_full)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--optimizer", "sgd", "--dataset", "digits", "--depth", "2", "--width", "8", "--epochs", "1",
                                 "--batch-size", "512", "--diagnostics-every", "0", "--device", "cpu", "--no-plots", "--output", str(out)])
    _one_sentence_exit_2(result)
    assert not (out / "results.h5").exists() and _temporaries(tmp_path) == []


def test_an_output_below_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, ["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(tmp_path / "afile" / "out.h5"), *FAST_SLICE])
    _one_sentence_exit_2(result)
    assert "is a file, not a folder" in " ".join(result.output.split())
