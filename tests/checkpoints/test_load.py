"""Checkpoints: every format round-trips to the same function; every bad file gives a ProbeError."""

from __future__ import annotations

import hashlib
import math
import pathlib
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from landscape_probe.checkpoints.load import load_checkpoint, save_checkpoint
from landscape_probe.checkpoints.summary import describe_parameters, summarize
from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import build_model


def assert_same_function(loaded: nn.Module, original: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), original(x), rtol=0, atol=1e-6)


def test_self_describing_round_trip(tiny_checkpoint: Path, tiny_model: nn.Module, tiny_args: dict, probe_input):
    loaded = load_checkpoint(tiny_checkpoint)
    assert loaded.format == "landscape_probe"
    assert loaded.model_args == tiny_args
    assert (loaded.step, loaded.data, loaded.config) == (12, {"name": "digits", "seed": 0}, {"optimizer": "sgd"})
    assert loaded.sha256 == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert not loaded.model.training
    assert "depth=3" in loaded.architecture and "width=7" in loaded.architecture
    assert_same_function(loaded.model, tiny_model, probe_input)


def test_self_describing_keeps_optimizer_state(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict):
    optimizer = torch.optim.Adam(tiny_model.parameters())
    tiny_model(torch.randn(2, 5)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "a.pt", tiny_model, tiny_args, optimizer=optimizer)
    state = load_checkpoint(tmp_path / "a.pt").optimizer
    torch.testing.assert_close(state["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_failed_save_leaves_existing_file_untouched(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict):
    path = tmp_path / "a.pt"
    save_checkpoint(path, tiny_model, tiny_args)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, tiny_model, tiny_args, config={"not picklable": lambda: 0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_torchscript_round_trip(tmp_path: Path, tiny_model: nn.Module, probe_input):
    path = tmp_path / "scripted.bin"
    torch.jit.save(torch.jit.script(tiny_model), str(path))
    loaded = load_checkpoint(path)
    assert loaded.format == "torchscript"
    assert_same_function(loaded.model, tiny_model, probe_input)


def test_export_round_trip(tmp_path: Path, tiny_model: nn.Module, probe_input):
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(tiny_model, (probe_input[:4],), dynamic_shapes=({0: batch},))
    path = tmp_path / "exported.pt2"
    torch.export.save(program, str(path))
    loaded = load_checkpoint(path)
    assert loaded.format == "export"
    assert_same_function(loaded.model, tiny_model, probe_input)


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + key: value for key, value in state.items()}


WRAPPERS = {
    "bare": lambda sd: sd,
    "state_dict key": lambda sd: {"state_dict": sd, "epoch": 3},
    "model_state_dict key": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    "model key": lambda sd: {"model": sd, "iter_num": 5},
    "ddp": lambda sd: _prefixed(sd, "module."),
    "lightning": lambda sd: {"state_dict": _prefixed(sd, "model."), "epoch": 1, "pytorch-lightning_version": "2.2"},
    "compiled in ddp": lambda sd: {"model": _prefixed(sd, "module._orig_mod.")},
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
@pytest.mark.parametrize("arch", ["mlp:depth=3,width=7", "mlp"])
def test_state_dict_wrappers_with_zoo_arch(tmp_path: Path, tiny_model: nn.Module, probe_input, wrap, arch: str):
    path = tmp_path / "weights.pt"
    torch.save(wrap(tiny_model.state_dict()), path)
    loaded = load_checkpoint(path, arch=arch)
    assert loaded.format == "state_dict"
    assert loaded.model_args["depth"] == 3 and loaded.model_args["width"] == 7
    assert loaded.model_args["in_features"] == 5 and loaded.model_args["num_outputs"] == 3
    assert_same_function(loaded.model, tiny_model, probe_input)


def test_safetensors_with_arch(tmp_path: Path, tiny_model: nn.Module, probe_input):
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(path))
    loaded = load_checkpoint(path, arch="mlp")
    assert loaded.format == "safetensors"
    assert_same_function(loaded.model, tiny_model, probe_input)


FACTORY = '''
from torch import nn

def make_net(hidden=4):
    return nn.Sequential(nn.Linear(5, hidden), nn.Tanh(), nn.Linear(hidden, 2))
'''


def test_import_path_arch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe_input):
    (tmp_path / "user_nets.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2))
    torch.save({"state_dict": net.state_dict()}, tmp_path / "net.pt")
    loaded = load_checkpoint(tmp_path / "net.pt", arch="user_nets:make_net", arch_kwargs={"hidden": 6})
    assert loaded.model_args is None and "user_nets:make_net" in loaded.architecture
    assert_same_function(loaded.model, net, probe_input)


@pytest.mark.parametrize(
    ("arch", "message"),
    [("no_such_module_xyz:make", "Cannot import"), ("torch.nn:NoSuchNet", "no callable"), ("what?", "Cannot read --arch")],
)
def test_bad_arch(tmp_path: Path, tiny_model: nn.Module, arch: str, message: str):
    torch.save(tiny_model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ProbeError, match=message):
        load_checkpoint(tmp_path / "w.pt", arch=arch)


def test_bare_weights_of_no_zoo_model_ask_for_arch(tmp_path: Path):
    torch.save(nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ProbeError, match="--arch"):
        load_checkpoint(tmp_path / "w.pt")


@pytest.mark.parametrize("prefix", ["", "module."])
def test_bare_mlp_weights_load_with_the_inferred_spec(tmp_path: Path, tiny_model: nn.Module, probe_input, prefix: str):
    torch.save(_prefixed(tiny_model.state_dict(), prefix), tmp_path / "w.pt")
    loaded = load_checkpoint(tmp_path / "w.pt")
    assert loaded.model_args == {"name": "mlp", "num_outputs": 3, "depth": 3, "in_features": 5, "width": 7, "bias": True, "activation": "relu"}
    assert "inferred" in loaded.architecture
    assert_same_function(loaded.model, tiny_model, probe_input)


def test_the_sample_state_dict_loads_without_arch():
    sample = Path(__file__).resolve().parents[2] / "sample_checkpoints"
    loaded = load_checkpoint(sample / "mlp2_digits_state_dict.pt")
    assert loaded.model_args["depth"] == 2 and loaded.model_args["width"] == 64
    x = torch.rand(4, 64)
    assert torch.allclose(loaded.model(x), load_checkpoint(sample / "mlp2_digits.pt").model(x))


def test_key_mismatch_names_missing_and_unexpected(tmp_path: Path, tiny_model: nn.Module):
    state = dict(tiny_model.state_dict())
    state["extra.weight"] = state.pop("hidden.1.bias")
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ProbeError) as info:
        load_checkpoint(tmp_path / "w.pt", arch="mlp:depth=3,width=7")
    assert "missing hidden.1.bias" in str(info.value)
    assert "unexpected extra.weight" in str(info.value)


def test_shape_mismatch_is_reported(tmp_path: Path, tiny_model: nn.Module):
    torch.save(tiny_model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ProbeError, match=r"wrong shape.*hidden\.0\.weight \(7, 5\) vs \(8, 5\)"):
        load_checkpoint(tmp_path / "w.pt", arch="mlp:depth=3,width=8")


def _write_random(path: Path) -> None:
    path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist()))


def _write_truncated(path: Path, source: Path) -> None:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, src: None, "does not exist"),
        (lambda p, src: p.mkdir(), "not a file"),
        (lambda p, src: p.write_bytes(b""), "empty"),
        (_write_truncated, "truncated or corrupt"),
        (lambda p, src: _write_random(p), "not a PyTorch checkpoint"),
        (lambda p, src: p.write_text("hello, I am text"), "not a PyTorch checkpoint"),
        (lambda p, src: torch.save({"lr": 0.1, "name": "x"}, p), "holds no model weights"),
        (lambda p, src: torch.save([1, 2, 3], p), "holds no model weights"),
    ],
    ids=["missing", "directory", "empty", "truncated", "random bytes", "text", "dict payload", "list payload"],
)
def test_unreadable_files_give_one_sentence(tmp_path: Path, tiny_checkpoint: Path, make, message: str):
    path = tmp_path / "bad.pt"
    make(path, tiny_checkpoint)
    with pytest.raises(ProbeError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


class _CreatesFile:
    """Unpickling this object creates a file: a stand-in for a hostile payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_without_trust(tmp_path: Path, writer: str):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"weight": torch.zeros(2, 2), "hook": _CreatesFile(target)}, path)
    else:
        path.write_bytes(pickle.dumps({"hook": _CreatesFile(target)}, protocol=2))
    with pytest.raises(ProbeError, match="--trust-checkpoint") as info:
        load_checkpoint(path)
    assert "pathlib" in str(info.value) or "getattr" in str(info.value)
    assert not target.exists()


def test_malicious_payload_is_live_under_trust(tmp_path: Path):
    """The payload above really runs when trusted: the refusal is what protects."""
    target = tmp_path / "pwned"
    torch.save({"hook": _CreatesFile(target)}, tmp_path / "evil.pt")
    with pytest.raises(ProbeError, match="no model weights"):
        load_checkpoint(tmp_path / "evil.pt", trust=True)
    assert target.exists()


def test_pickled_module_needs_trust(tmp_path: Path, tiny_model: nn.Module, probe_input):
    path = tmp_path / "whole.pt"
    torch.save(tiny_model.double(), path)
    with pytest.raises(ProbeError, match="--trust-checkpoint"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, trust=True)
    assert loaded.format == "pickled_module" and loaded.architecture == "MLP"
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert_same_function(loaded.model, tiny_model.float(), probe_input)


def test_loaded_model_is_in_eval_mode(tmp_path: Path):
    args = {"name": "mlp", "in_features": 4, "num_outputs": 2, "depth": 2, "width": 6, "norm": "batch"}
    model = build_model(args).train()
    model(torch.randn(8, 4))  # moves the batch-norm running statistics away from their initial values
    save_checkpoint(tmp_path / "bn.pt", model, args)
    loaded = load_checkpoint(tmp_path / "bn.pt").model
    x = torch.randn(3, 4)
    assert not any(m.training for m in loaded.modules())
    assert_same_function(loaded, model.eval(), x)


def _matrix_with_singular_values(rows: int, cols: int, values: list[float]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=generator, dtype=torch.float64))
    sigma = torch.zeros(rows, cols, dtype=torch.float64)
    sigma[range(len(values)), range(len(values))] = torch.tensor(values, dtype=torch.float64)
    return u @ sigma @ v.T


def test_describe_parameters_against_closed_forms():
    linear = nn.Linear(6, 4)
    conv = nn.Conv2d(2, 3, kernel_size=2)
    with torch.no_grad():
        linear.weight.copy_(_matrix_with_singular_values(4, 6, [3.0, 2.0, 0.5, 0.1]))
        conv.weight.copy_(_matrix_with_singular_values(3, 8, [1.5, 1.0, 0.25]).reshape(3, 2, 2, 2))
    rows = {row["name"]: row for row in describe_parameters(nn.ModuleDict({"fc": linear, "conv": conv}))}
    assert rows["fc.weight"]["spectral_norm"] == pytest.approx(3.0, rel=1e-6)
    assert rows["fc.weight"]["frobenius_norm"] == pytest.approx(math.sqrt(9 + 4 + 0.25 + 0.01), rel=1e-6)
    assert rows["conv.weight"]["spectral_norm"] == pytest.approx(1.5, rel=1e-6)
    assert rows["conv.weight"]["shape"] == [3, 2, 2, 2] and rows["conv.weight"]["numel"] == 24
    assert rows["fc.bias"]["spectral_norm"] is None and not rows["fc.bias"]["is_layer"]
    assert rows["fc.weight"]["is_layer"] and rows["conv.weight"]["is_layer"]
    bias = linear.bias.detach().tolist()
    assert rows["fc.bias"]["frobenius_norm"] == pytest.approx(math.sqrt(sum(b * b for b in bias)), rel=1e-6)


def test_spectral_norm_matches_svdvals(tiny_model: nn.Module):
    for row, (name, param) in zip(describe_parameters(tiny_model), tiny_model.named_parameters()):
        assert row["name"] == name
        if param.ndim >= 2:
            expected = torch.linalg.svdvals(param.detach().double()).max().item()
            assert row["spectral_norm"] == pytest.approx(expected, rel=1e-9)


def test_summarize_totals(tiny_checkpoint: Path, tiny_model: nn.Module):
    summary = summarize(load_checkpoint(tiny_checkpoint))
    params = list(tiny_model.parameters())
    assert summary["totals"]["numel"] == 5 * 7 + 7 + 7 * 7 + 7 + 7 * 3 + 3
    assert summary["totals"]["layers"] == 3 and summary["totals"]["tensors"] == 6
    assert summary["totals"]["layer_numel"] == 5 * 7 + 7 * 7 + 7 * 3
    flat = torch.cat([p.detach().double().flatten() for p in params])
    assert summary["totals"]["frobenius_norm"] == pytest.approx(math.sqrt(float(flat @ flat)), rel=1e-9)


TINY_MLP = {"name": "mlp", "in_features": 5, "num_outputs": 3, "depth": 3}


def _self_describing_payload(model: nn.Module, args: dict, **changes: Any) -> dict[str, Any]:
    payload = {"format": "landscape_probe", "format_version": 1, "model_args": dict(args), "state_dict": dict(model.state_dict())}
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": "1"}, "format_version '1'; it must be a whole number"),
        ({"format_version": 2}, "format version 2"),
        ({"model_args": {**TINY_MLP, "width": 0}}, "width=0; it must be at least 1"),
        ({"model_args": {**TINY_MLP, "width": 2.5}}, "width=2.5; it must be a whole number"),
        ({"model_args": {**TINY_MLP, "width": "abc"}}, "width='abc'; it must be a whole number"),
        ({"model_args": {**TINY_MLP, "depth": 1_000_000}}, r"depth=1000000, more than the 6 tensors the file stores"),
        ({"model_args": {**TINY_MLP, "depth": 100_000_000}}, r"depth=100000000, more than the 6 tensors"),
        ({"model_args": {**TINY_MLP, "width": 10**12}}, r"more than the 122 numbers"),
        ({"model_args": {"name": "resnet9000"}}, "names the model 'resnet9000'"),
        ({"state_dict": {"hidden.0.weight": [1, 2]}}, "lacks model_args or state_dict"),
    ],
    ids=["version str", "version 2", "width 0", "width 2.5", "width abc", "depth 1e6", "depth 1e8", "width 1e12", "unknown family", "list weight"],
)
def test_bad_self_describing_files_are_refused_before_building(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict, change: dict, message: str):
    torch.save(_self_describing_payload(tiny_model, tiny_args, **change), tmp_path / "bad.pt")
    with pytest.raises(ProbeError, match=message) as info:
        load_checkpoint(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


def test_a_model_far_larger_than_the_stored_weights_is_not_built(tmp_path: Path, tiny_model: nn.Module, monkeypatch: pytest.MonkeyPatch):
    state = {**tiny_model.state_dict(), "padding": torch.zeros(2000)}
    args = {**TINY_MLP, "depth": 7, "width": 2000}
    torch.save(_self_describing_payload(tiny_model, args, state_dict=state), tmp_path / "bomb.pt")
    built = []
    monkeypatch.setattr("landscape_probe.checkpoints.load.build_on_meta", built.append)
    # 5·2000 + 2000, then 5 × (2000² + 2000), then 2000·3 + 3
    with pytest.raises(ProbeError, match=r"describes a model of 20,028,003 parameters, but the file stores only 2,122 numbers"):
        load_checkpoint(tmp_path / "bomb.pt")
    assert built == []


def test_arch_spec_values_must_be_whole_numbers(tmp_path: Path, tiny_model: nn.Module):
    torch.save(tiny_model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ProbeError, match="--arch mlp:depth=abc gives depth='abc'; it must be a whole number"):
        load_checkpoint(tmp_path / "w.pt", arch="mlp:depth=abc")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_unless_allowed(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict, value: float):
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["hidden.1.weight"][2, 3] = value
    torch.save(_self_describing_payload(tiny_model, tiny_args, state_dict=state), tmp_path / "bad.pt")
    with pytest.raises(ProbeError, match=r"1 of the 49 values of hidden.1.weight are NaN or infinite"):
        load_checkpoint(tmp_path / "bad.pt")
    rows = summarize(load_checkpoint(tmp_path / "bad.pt", allow_nonfinite=True))["parameters"]
    assert [row["name"] for row in rows if not row["finite"]] == ["hidden.1.weight"]
    assert next(row for row in rows if row["name"] == "hidden.1.weight")["spectral_norm"] is None


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_non_floating_weights_are_refused(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict, dtype: torch.dtype):
    state = dict(tiny_model.state_dict())
    state["hidden.0.weight"] = torch.ones(7, 5, dtype=dtype)
    torch.save(_self_describing_payload(tiny_model, tiny_args, state_dict=state), tmp_path / "bad.pt")
    with pytest.raises(ProbeError, match=rf"real floating-point numbers, but hidden.0.weight \({dtype}\) are not"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_pickled_module_with_complex_weights_is_refused(tmp_path: Path):
    net = nn.Linear(3, 2).to(torch.complex64)
    torch.save(net, tmp_path / "whole.pt")
    with pytest.raises(ProbeError, match=r"weight \(torch.complex64\)"):
        load_checkpoint(tmp_path / "whole.pt", trust=True)


def _flip_byte_inside(path: Path, member_suffix: str) -> None:
    """Flip one byte of a member's stored content, as a bad disk would."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["self-describing", "state_dict", "torchscript"])
def test_corrupt_archives_are_refused_by_their_checksums(tmp_path: Path, tiny_model: nn.Module, tiny_args: dict, kind: str):
    path = tmp_path / "flipped.pt"
    if kind == "self-describing":
        save_checkpoint(path, tiny_model, tiny_args)
    elif kind == "state_dict":
        torch.save(tiny_model.state_dict(), path)
    else:
        torch.jit.save(torch.jit.script(tiny_model), path)
    load_checkpoint(path)
    _flip_byte_inside(path, "data/0")
    with pytest.raises(ProbeError, match=r"corrupt: the checksum of its member \S+/data/0 does not match"):
        load_checkpoint(path)


class _Opens:
    def __reduce__(self) -> tuple[Any, ...]:
        return (open, ("never-created", "w"))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_globals_finds_every_import_at_every_protocol(protocol: int):
    import collections
    import fractions

    from landscape_probe.checkpoints.audit import pickle_globals

    payload = [collections.OrderedDict(a=1), fractions.Fraction(1, 3), _Opens(), collections.OrderedDict(b=2), "plain", 3]
    names = pickle_globals(pickle.dumps(payload, protocol=protocol))
    opener = f"{open.__module__}.open"  # io.open up to Python 3.11, _io.open from 3.12
    assert {"collections.OrderedDict", "fractions.Fraction", opener} <= set(names)
    assert all(name.count(".") >= 1 for name in names)


def test_a_global_whose_name_is_computed_is_unknown_and_refused(tmp_path: Path):
    from landscape_probe.checkpoints.audit import UNKNOWN_GLOBAL, pickle_globals

    # module and name built by calling str.join at load time, then imported by STACK_GLOBAL
    computed = (b"\x80\x04" b"\x8c\x08builtins\x8c\x03str\x93\x8c\x04join\x86\x94"  # noqa: ISC001
                b"\x8c\x00\x8c\x02io\x85\x86R\x8c\x04open\x93.")
    assert UNKNOWN_GLOBAL in pickle_globals(computed)
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), tmp_path / "ts.pt")
    with zipfile.ZipFile(tmp_path / "ts.pt") as old, zipfile.ZipFile(tmp_path / "evil.pt", "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, computed if info.filename.endswith("/data.pkl") else old.read(info.filename))
    with pytest.raises(ProbeError, match=r"data.pkl holds the Python object builtins.str;"):
        load_checkpoint(tmp_path / "evil.pt")


def test_arch_given_for_a_self_describing_checkpoint_replaces_what_it_records() -> None:
    """It was ignored without a word; now the user's architecture is built, and weights that do not fit it are
    refused in one sentence."""
    sample = Path(__file__).resolve().parents[2] / "sample_checkpoints" / "mlp2_digits.pt"
    recorded = load_checkpoint(sample)
    tanh = load_checkpoint(sample, arch="mlp:depth=2,width=64,activation=tanh")
    assert "activation=relu" in recorded.architecture and "activation=tanh" in tanh.architecture
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert not torch.allclose(tanh.model(x), recorded.model(x))  # the same weights, another activation
    for name, tensor in recorded.model.state_dict().items():
        assert torch.equal(tanh.model.state_dict()[name], tensor), name
    with pytest.raises(ProbeError, match="do not fit the architecture"):
        load_checkpoint(sample, arch="mlp:depth=3")
