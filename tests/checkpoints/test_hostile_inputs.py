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
import functools
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from cli_outcomes import one_sentence_exit_2
import torch
from safetensors.torch import save_file
from torch import nn

from landscape_probe.atomic import atomic_path
from landscape_probe.checkpoints.load import load_checkpoint
from landscape_probe.cli import app
from landscape_probe.errors import ProbeError

runner = CliRunner()


def invoke(args: list[str]) -> Result:
    """``probe ARGS`` as typer's CliRunner runs it."""
    return runner.invoke(app, args)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_checkpoints"
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
        result = invoke(command)
        if kind == "safetensors metadata" and command[0] == "info":
            assert result.exit_code == 0 and "│ w " in result.output  # bare weights are listed; metadata is never unpickled
        else:
            one_sentence_exit_2(result)
        assert not target.exists(), f"{kind}: the payload ran during {command[0]}"
    assert not out.exists()


@pytest.mark.parametrize("kind", [".pt2 use_pickle weight", ".pt2 pickled sample_inputs", "torch zip"])
def test_the_payloads_are_live_when_trusted(tmp_path: Path, kind: str) -> None:
    """The same files do run their payload under --trust-checkpoint: the refusal above is what protects."""
    target, path = tmp_path / "created_by_payload", tmp_path / f"evil{SUFFIX.get(kind, '.pt')}"
    MALICIOUS_CHECKPOINTS[kind](path, target)
    invoke(["info", str(path), "--trust-checkpoint"])
    assert target.exists()


TRAIN_TINY = ["--depth", "2", "--width", "8", "--epochs", "1", "--batch-size", "256", "--diagnostics-every", "0",
              "--device", "cpu", "--no-plots"]


@pytest.mark.parametrize("kind", ["pickle", "torch zip", "nested container"])
def test_train_init_from_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    target, path = tmp_path / "created_by_payload", tmp_path / "evil.pt"
    MALICIOUS_CHECKPOINTS[kind](path, target)
    text = one_sentence_exit_2(invoke(["train", "--init-from", str(path), *TRAIN_TINY,
                                       "--output", str(tmp_path / "run")]))
    assert "--trust-checkpoint" in text
    assert not target.exists() and not (tmp_path / "run").exists()


def test_train_init_from_a_pickled_module_needs_trust_checkpoint(tmp_path: Path) -> None:
    """A whole nn.Module (a pickle that needs code) is refused in one sentence, and loads with the flag."""
    from landscape_probe.models.zoo import build_model
    from landscape_probe.training.result import TrainResult

    torch.manual_seed(4)
    pretrained = build_model({"name": "mlp", "depth": 2, "width": 8, "in_features": 64, "num_outputs": 10})
    path = tmp_path / "whole_module.pt"
    torch.save(pretrained, path)
    command = ["train", "--init-from", str(path), *TRAIN_TINY, "--output", str(tmp_path / "run")]
    assert "--trust-checkpoint" in one_sentence_exit_2(invoke(command))
    result = invoke([*command, "--trust-checkpoint"])
    assert result.exit_code == 0, result.output
    first_norms = TrainResult.load(tmp_path / "run" / "results.h5").runs[0].records["weight_norm"][0]
    np.testing.assert_allclose(first_norms, [float(p.norm()) for p in pretrained.parameters() if p.ndim >= 2],
                               rtol=1e-6)


ZOO_LINEAR = {"name": "mlp", "depth": 1, "width": 8, "in_features": 64, "num_outputs": 10}


def _checkpoint_naming_a_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: Path) -> Path:
    """A well-formed run checkpoint (plain tensors, safe to unpickle) whose recorded builder is a function that
    leaves ``target`` behind: what an attacker would point at ``os:system`` with a command."""
    from landscape_probe.checkpoints.load import save_checkpoint
    from landscape_probe.models.zoo import build_model

    code = tmp_path / "code"
    code.mkdir()
    (code / "leaves_a_mark.py").write_text(
        "from pathlib import Path\nimport torch\n\n"
        "from landscape_probe.models.zoo import build_model\n\n"
        "def build(mark):\n    Path(mark).write_text('ran')\n    return build_model(" + repr(ZOO_LINEAR) + ")\n")
    monkeypatch.syspath_prepend(str(code))
    path = tmp_path / "names_a_builder.pt"
    model_args = {"name": "custom", "factory": "leaves_a_mark:build", "arch_kwargs": {"mark": str(target)}}
    save_checkpoint(path, build_model(ZOO_LINEAR), model_args, data={"name": "digits"})
    return path


def test_a_checkpoint_never_runs_the_builder_it_names_without_trust(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "created_by_builder"
    path = _checkpoint_naming_a_builder(tmp_path, monkeypatch, target)
    out = tmp_path / "out.h5"
    for command in (["slice", str(path), "--output", str(out), *FAST_SLICE],
                    ["slice", str(SAMPLES / "mlp2_digits.pt"), "--direction", f"checkpoint:{path}", "--output",
                     str(out), *FAST_SLICE]):
        text = one_sentence_exit_2(invoke(command))
        assert "leaves_a_mark:build" in text and "--trust-checkpoint" in text
    listed = invoke(["info", str(path)])  # the tensors are still listed, from the file alone
    assert listed.exit_code == 0 and "output.weight" in listed.output
    trained = invoke(["train", "--init-from", str(path), "--arch", "mlp:depth=1", *TRAIN_TINY[2:],
                      "--output", str(tmp_path / "run")])  # its weights start a run of a model the user names
    assert not target.exists() and not out.exists(), "the recorded builder ran without --trust-checkpoint"
    assert trained.exit_code == 0, trained.output
    sliced = invoke(["slice", str(path), "--trust-checkpoint", "--output", str(out), *FAST_SLICE])
    assert sliced.exit_code == 0 and target.exists()  # the flag is what lets it run


def test_refusals_name_the_offending_member(tmp_path: Path) -> None:
    target = tmp_path / "created_by_payload"
    _pt2_with_pickled_weight(tmp_path / "a.pt2", target)
    _pt2_with_pickled_sample_inputs(tmp_path / "b.pt2", target)
    _torchscript_with_payload(tmp_path / "c.pt", target)
    expected = {"a.pt2": "model_weights_config.json stores '0.weight'", "b.pt2": "sample_inputs/model.pt", "c.pt": f"data.pkl holds the Python object {open.__module__}.open"}
    for name, words in expected.items():
        result = invoke(["info", str(tmp_path / name)])
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
    result = invoke(["slice", str(SAMPLES / "mlp2_digits.pt"), "--data", str(path), "--output", str(out), *FAST_SLICE])
    one_sentence_exit_2(result)
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
    result = invoke(["slice", str(tmp_path / "fixed.pt2"), "--data", "digits", "--output", str(out), *FAST_SLICE])
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
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, env=env)
    assert child.stdout.readline() == b"writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists() and len(_temporaries(tmp_path)) == 1
    result = invoke(["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(out), *FAST_SLICE])
    assert result.exit_code == 0, result.output
    assert out.is_file() and _temporaries(tmp_path) == []


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_slice_gives_one_sentence_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h5py.Group, "create_dataset", _disk_full)
    out = tmp_path / "out.h5"
    result = invoke(["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(out), *FAST_SLICE])
    one_sentence_exit_2(result)
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
    result = invoke(["train", "--optimizer", "sgd", "--dataset", "digits", "--depth", "2", "--width", "8", "--epochs", "1",
                                 "--batch-size", "512", "--diagnostics-every", "0", "--device", "cpu", "--no-plots", "--output", str(out)])
    one_sentence_exit_2(result)
    assert not (out / "results.h5").exists() and _temporaries(tmp_path) == []


def test_an_output_below_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = invoke(["slice", str(SAMPLES / "mlp2_digits.pt"), "--output", str(tmp_path / "afile" / "out.h5"), *FAST_SLICE])
    one_sentence_exit_2(result)
    assert "is a file, not a folder" in " ".join(result.output.split())


# ---------------------------------------------------------------- hundreds of malformed files

BASE_ARGS = {"name": "mlp", "in_features": 64, "num_outputs": 10, "depth": 2, "width": 8}


@functools.cache
def _base_model() -> nn.Module:
    from landscape_probe.models.zoo import build_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model(BASE_ARGS).eval()


def _payload(**changes: object) -> dict:
    """A self-describing checkpoint of a digits MLP (so that any file that wrongly loads would slice fine)."""
    payload = {"format": "landscape_probe", "format_version": 1, "model_args": dict(BASE_ARGS),
               "state_dict": dict(_base_model().state_dict()), "data": {"name": "digits", "seed": 0}}
    payload.update(changes)
    return payload


def _with_tensor(name: str, value: torch.Tensor) -> dict:
    return _payload(state_dict={**_base_model().state_dict(), name: value})


@functools.cache
def _valid_bytes(kind: str) -> bytes:
    """A valid file of each kind, made once per session (scripting and exporting are slow)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid"
        if kind == "self-describing":
            torch.save(_payload(), path)
        elif kind == "torchscript":
            torch.jit.save(torch.jit.script(_base_model()), path)
        elif kind == "export":
            shapes = ({0: torch.export.Dim("batch")},)
            torch.export.save(torch.export.export(_base_model(), (torch.randn(2, 64),), dynamic_shapes=shapes), path)
        else:
            save_file(dict(_base_model().state_dict()), str(path))
        return path.read_bytes()


def _valid_archive(path: Path, kind: str) -> bytes:
    path.write_bytes(_valid_bytes(kind))
    return _valid_bytes(kind)


def _flip_in_member(path: Path, kind: str, which: int, offset: int) -> None:
    _valid_archive(path, kind)
    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if i.file_size > 0]
    info = members[which % len(members)]
    data = bytearray(path.read_bytes())
    name_length, extra_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"), int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_length + extra_length + offset % info.file_size] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncated(path: Path, kind: str, fraction: float) -> None:
    data = _valid_archive(path, kind)
    path.write_bytes(data[: max(1, int(len(data) * fraction))])


def _random_bytes(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    head = [b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", (40).to_bytes(8, "little") + b"{"][seed % 5]
    path.write_bytes(head + rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8).tobytes())


def _safetensors_header(path: Path, header: bytes, body: bytes = b"\x00" * 16) -> None:
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)


def _special(path: Path, kind: str) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling link":
        path.symlink_to(path.with_name("nowhere"))
    elif kind == "link loop":
        path.symlink_to(path)
    else:
        path.write_bytes(b"")


WRONG_TYPES = [0, 3.5, "weights", None, [1, 2], (torch.zeros(2),), torch.zeros(3, 3), {"a": 1}, {"state_dict": [1, 2]},
               {"model": {"w": "not a tensor"}}, {1: torch.zeros(2)}, {"format": "landscape_probe"},
               {"format": "landscape_probe", "model_args": [1, 2], "state_dict": {}},
               {"format": "landscape_probe", "model_args": "mlp", "state_dict": {"w": torch.zeros(2)}},
               {"format": "landscape_probe", "model_args": dict(BASE_ARGS), "state_dict": torch.zeros(2)},
               {"format": "landscape_probe", "model_args": dict(BASE_ARGS), "state_dict": {"w": [1.0]}},
               {"format": "other", "weights": torch.zeros(2)}, {"optimizer": {"lr": 0.1}}, {}, [], set(), b"bytes",
               {"state_dict": {}}, {"model_state_dict": None}, {"model": torch.zeros(2), "epoch": 3}]
KEYS = ["hidden.0.weight", "hidden.0.bias", "output.weight", "output.bias"]
BAD_SHAPES = [lambda t: t.T if t.ndim == 2 else t.unsqueeze(0), lambda t: t.flatten() if t.ndim > 1 else t.reshape(-1, 1), lambda t: t[:1], lambda t: torch.zeros(()),
              lambda t: torch.zeros(0), lambda t: torch.cat([t, t]), lambda t: t.reshape(1, -1, 1)]
BAD_DTYPES = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128]
BOMBS = [("depth", 10**6), ("depth", 10**8), ("width", 10**9), ("in_features", 10**12), ("num_outputs", 10**7), ("depth", -1),
         ("width", 0), ("width", 2.5), ("depth", "abc"), ("width", True), ("in_features", [64]), ("num_outputs", None),
         ("width", float("nan")), ("depth", 10**30), ("width", -5), ("name", "mlp" * 1000), ("name", None),
         ("format_version", "1"), ("format_version", 10**9), ("format_version", None)]


def _malformed_cases() -> list[tuple[str, Callable[[Path], None]]]:
    cases: list[tuple[str, Callable[[Path], None]]] = []
    add = lambda name, build: cases.append((name, build))  # noqa: E731
    for seed in range(25):
        add(f"random bytes {seed}", lambda p, s=seed: _random_bytes(p, s))
    for kind in ("self-describing", "torchscript", "export", "safetensors"):
        for fraction in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            add(f"truncated {kind} {fraction}", lambda p, k=kind, f=fraction: _truncated(p, k, f))
    for kind in ("self-describing", "torchscript", "export"):
        for which in range(12):
            add(f"flipped {kind} member {which}", lambda p, k=kind, w=which: _flip_in_member(p, k, w, 7 * w + 1))
    for index, payload in enumerate(WRONG_TYPES):
        add(f"wrong type {index}", lambda p, obj=payload: torch.save(obj, p))
    add("wrong type plain pickle", lambda p: p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2)))
    for key in KEYS:
        for index, reshape in enumerate(BAD_SHAPES):
            add(f"wrong shape {key} {index}", lambda p, k=key, r=reshape: torch.save(_with_tensor(k, r(_base_model().state_dict()[k])), p))
        for dtype in BAD_DTYPES:
            add(f"wrong dtype {key} {dtype}", lambda p, k=key, d=dtype: torch.save(_with_tensor(k, _base_model().state_dict()[k].to(d)), p))
        add(f"missing {key}", lambda p, k=key: torch.save(_payload(state_dict={n: t for n, t in _base_model().state_dict().items() if n != k}), p))
        add(f"renamed {key}", lambda p, k=key: torch.save(_payload(state_dict={(n + "_x" if n == k else n): t for n, t in _base_model().state_dict().items()}), p))
        for value in (float("nan"), float("inf"), -float("inf")):
            def poisoned(p: Path, k: str = key, v: float = value) -> None:
                tensor = _base_model().state_dict()[k].clone()
                tensor.view(-1)[-1] = v
                torch.save(_with_tensor(k, tensor), p)

            add(f"non-finite {key} {value}", poisoned)
    add("extra key", lambda p: torch.save(_with_tensor("hidden.9.weight", torch.zeros(8, 8)), p))
    for key in ("name", "in_features", "num_outputs"):
        add(f"model_args without {key}", lambda p, k=key: torch.save(_payload(model_args={n: v for n, v in BASE_ARGS.items() if n != k}), p))
    add("model_args with unknown key", lambda p: torch.save(_payload(model_args={**BASE_ARGS, "colour": "red"}), p))
    for key, value in BOMBS:
        if key == "format_version":
            add(f"bad {key} {value!r}", lambda p, v=value: torch.save(_payload(format_version=v), p))
        else:
            add(f"bad {key} {str(value)[:12]}", lambda p, k=key, v=value: torch.save(_payload(model_args={**BASE_ARGS, k: v}), p))
    for header in (b"{", b'{"w": 5}', b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 999]}}',
                   b'{"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}', b'{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}',
                   b'{"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 8]}}', b'[1, 2]', b'{"__metadata__": 5}'):
        add(f"safetensors header {header[:30]!r}", lambda p, h=header: _safetensors_header(p, h))
    for kind in ("folder", "fifo", "dangling link", "link loop", "empty"):
        add(f"special {kind}", lambda p, k=kind: _special(p, k))
    return cases


MALFORMED = _malformed_cases()


def test_the_generator_makes_at_least_200_files_across_the_categories() -> None:
    categories = {name.split(" ")[0] for name, _ in MALFORMED}
    assert len(MALFORMED) >= 200
    assert {"random", "truncated", "flipped", "wrong", "missing", "non-finite", "bad", "safetensors", "special"} <= categories


@pytest.mark.parametrize(("name", "build"), MALFORMED, ids=[name for name, _ in MALFORMED])
def test_malformed_files_give_one_sentence_in_info_and_slice(tmp_path: Path, name: str, build: Callable[[Path], None]) -> None:
    path, out = tmp_path / "bad.pt", tmp_path / "out.h5"
    build(path)
    for command in (["info", str(path)], ["slice", str(path), "--data", "digits", "--output", str(out), *FAST_SLICE]):
        result = invoke(command)
        one_sentence_exit_2(result)
        assert result.stdout == "", result.stdout
    assert not out.exists() and _temporaries(tmp_path) == []


def test_names_in_an_exported_graph_cannot_inject_code(tmp_path: Path) -> None:
    """torch.export archives hold their graph as JSON; a node named like Python code becomes an identifier, never code."""
    target = tmp_path / "created_by_payload"
    injection = f"relu = __import__('os').system('touch {target}') or x"
    _rewrite_zip(_exported(tmp_path / "ok.pt2"), tmp_path / "named.pt2",
                 {"models/model.json": lambda old: old.replace(b'"relu"', json.dumps(injection).encode())})
    model = load_checkpoint(tmp_path / "named.pt2").model
    model(torch.randn(3, 64))
    assert not target.exists()


SLICE_TO_KILL = ["slice", str(SAMPLES / "mlp16_digits.pt"), "--layers", "--points", "12", "--power-iterations", "20", "--device", "cpu", "--no-plots"]
TRAIN_TO_KILL = ["train", "--optimizer", "sgd", "--optimizer", "adam", "--dataset", "digits", "--depth", "4", "--width", "32",
                 "--epochs", "3", "--batch-size", "64", "--diagnostics-every", "10", "--device", "cpu", "--no-plots"]


def _complete_or_absent(output: Path) -> None:
    """Every results file and checkpoint under ``output`` opens as a complete file."""
    files = [output] if output.suffix == ".h5" else [*output.rglob("results.h5"), *output.rglob("checkpoint.pt")]
    for path in files:
        if path.suffix == ".h5" and path.exists():
            with h5py.File(path, "r") as h5:
                assert h5.attrs["kind"] in ("slice", "train")
        elif path.exists():
            load_checkpoint(path)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PROBE_SLOW_TESTS"), reason="set PROBE_SLOW_TESTS=1: about 2 minutes of killed runs")
@pytest.mark.parametrize("command", ["slice", "train"])
def test_sigkill_at_random_moments_leaves_complete_files_and_no_temporaries_after_the_next_run(tmp_path: Path, command: str) -> None:
    output = tmp_path / ("out.h5" if command == "slice" else "run")
    arguments = [*(SLICE_TO_KILL if command == "slice" else TRAIN_TO_KILL), "--output", str(output)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    rng = np.random.default_rng(0)
    left_behind, killed, complete = 0, 0, 0
    for _ in range(10):
        child = subprocess.Popen([sys.executable, "-m", "landscape_probe", *arguments, "--overwrite"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.wait(timeout=float(rng.uniform(1.0, 8.0)))
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            killed += 1
        _complete_or_absent(output)
        complete += (output if command == "slice" else output / "results.h5").exists()
        left_behind += len(_temporaries(tmp_path))
    finished = subprocess.run([sys.executable, "-m", "landscape_probe", *arguments, "--overwrite"], env=env, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()
    _complete_or_absent(output)
    assert _temporaries(tmp_path) == [], f"{left_behind} temporaries were seen after kills"
    print(f"{command}: {killed} of 10 runs killed, results file present (complete) after {complete}, temporaries seen {left_behind}, none after the next run")
