"""Load any supported PyTorch checkpoint safely; save self-describing ones.

Formats, detected from the file's content rather than its extension:

- ``landscape_probe``: the tool's own dict ``{"format": "landscape_probe",
  "format_version", "model_args", "state_dict", "optimizer"?, "step"?,
  "config"?, "data"?}``; ``model_args`` rebuilds a zoo model with no other input.
- ``torchscript``: an archive written by ``torch.jit.save``.
- ``export``: a ``torch.export`` program (``.pt2``), run through ``.module()``.
- ``state_dict``: a bare state_dict or a common wrapper around one (``state_dict``,
  ``model_state_dict``, ``model``; ``module.`` from DDP, ``model.`` from
  Lightning, ``_orig_mod.`` from ``torch.compile``), with an architecture.
- ``safetensors``: a safetensors file, with an architecture.
- ``pickled_module``: ``torch.save(model)``, only with ``trust=True``.

Without ``trust`` every pickle is read with ``torch.load(weights_only=True)``,
which refuses any Python object other than tensors and plain containers, so a
hostile file cannot run code.

Example:
    >>> loaded = load_checkpoint("sample_checkpoints/mlp16_digits.pt")   # doctest: +SKIP
    >>> loaded.format, loaded.architecture                               # doctest: +SKIP
    ('landscape_probe', 'mlp depth=16 width=64 ...')
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.architecture import build_architecture, load_weights, state_dict_in
from landscape_probe.atomic import atomic_path
from landscape_probe.errors import ProbeError
from landscape_probe.models import build_model

FORMAT_NAME = "landscape_probe"
FORMAT_VERSION = 1
TRUST_HINT = "unpickling such objects can run arbitrary code, so pass --trust-checkpoint only if you trust the file"


@dataclass
class LoadedCheckpoint:
    """A model loaded from a checkpoint, with what the file says about it.

    Attributes:
        model: the network, in ``eval()`` mode, float32, on the CPU.
        format: landscape_probe, torchscript, export, state_dict, safetensors or pickled_module.
        path: the file it came from.
        sha256: hex digest of the file's bytes.
        architecture: human-readable, e.g. ``mlp depth=16 width=64`` or a class name.
        model_args: zoo arguments when known (always for ``landscape_probe``).
        data: the ``Dataset.spec`` recorded at training time.
        step: training step at which it was saved.
        config: the training configuration recorded with it.
        optimizer: the optimizer's state_dict, when saved.
    """

    model: nn.Module
    format: str
    path: Path
    sha256: str
    architecture: str
    model_args: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    step: int | None = None
    config: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None


def load_checkpoint(
    path: Path | str,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
) -> LoadedCheckpoint:
    """Load a checkpoint of any supported format.

    Args:
        path: the checkpoint file.
        arch: architecture for a bare state_dict or safetensors file: a zoo spec
            (``mlp:depth=16,width=64``; missing MLP sizes are read off the
            weights) or an import path ``pkg.module:factory``.
        arch_kwargs: keyword arguments for the factory (or extra zoo arguments).
        trust: allow unpickling arbitrary Python objects (whole ``nn.Module``s).

    Returns:
        The model in eval mode, float32, on the CPU, and the file's metadata.

    Raises:
        ProbeError: for a missing, unreadable, corrupt, unsafe or unsupported
            file, a missing architecture, or weights that do not fit it.
    """
    path = Path(path)
    if not path.exists():
        raise ProbeError(f"Checkpoint '{path}' does not exist.")
    if not path.is_file():
        raise ProbeError(f"Checkpoint '{path}' is not a file.")
    kind = detect_format(path)
    if kind == "torchscript":
        loaded = _checkpoint(path, "torchscript", _load_torchscript(path))
    elif kind == "export":
        loaded = _checkpoint(path, "export", _load_export(path))
    elif kind == "safetensors":
        loaded = _from_state_dict(path, "safetensors", _load_safetensors(path), arch, arch_kwargs)
    else:
        loaded = _from_pickle(path, _torch_load(path, trust), arch, arch_kwargs)
    _to_eval_float_cpu(loaded.model, exported=kind == "export")
    return loaded


def save_checkpoint(
    path: Path | str,
    model: nn.Module,
    model_args: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None = None,
    step: int | None = None,
    config: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write a self-describing checkpoint atomically (temporary file, then rename).

    The file is a plain dict that ``torch.load(weights_only=True)`` reads, so
    ``config`` and ``data`` must hold only strings, numbers, booleans, lists and dicts.
    """
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_args": dict(model_args),
        "state_dict": {name: t.detach().cpu() for name, t in model.state_dict().items()},
    }
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    extras = {"optimizer": optimizer, "step": step, "config": config, "data": data}
    payload.update({key: value for key, value in extras.items() if value is not None})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def detect_format(path: Path) -> str:
    """Tell the format from the bytes: ``torchscript``, ``export``, ``torch_save``, ``safetensors`` or ``pickle``.

    Raises:
        ProbeError: for an empty, corrupt or unrecognised file.
    """
    with path.open("rb") as handle:
        head = handle.read(9)
    if not head:
        raise ProbeError(f"Checkpoint '{path}' is empty.")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise ProbeError(f"Checkpoint '{path}' is a truncated or corrupt archive.") from None
        if any(name.endswith("/constants.pkl") for name in names):
            return "torchscript"
        if any(name.endswith(("/archive_format", "/serialized_exported_program.json")) for name in names):
            return "export"
        if any(name.endswith("/data.pkl") for name in names):
            return "torch_save"
        raise ProbeError(f"Checkpoint '{path}' is a zip archive but not one PyTorch wrote.")
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head[0] == 0x80:
        return "pickle"
    raise ProbeError(f"'{path}' is not a PyTorch checkpoint (its content matches no supported format).")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_parameters(model: nn.Module) -> list[dict[str, Any]]:
    """Name, shape, count and norms of every parameter, for ``probe info``.

    The spectral norm ||W||_* = σ_max(W) is computed in float64 for matrices;
    a conv kernel of shape (out, in, k...) is read as the (out, in·k...) matrix;
    1-D parameters get None. ``is_layer`` marks ndim ≥ 2 (DESIGN §2).
    """
    rows = []
    for name, param in model.named_parameters():
        weight = param.detach().to(torch.float64)
        spectral = None
        if weight.ndim >= 2:
            spectral = float(torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2))
        rows.append(
            {
                "name": name,
                "shape": list(weight.shape),
                "numel": weight.numel(),
                "frobenius_norm": float(weight.norm()),
                "spectral_norm": spectral,
                "is_layer": weight.ndim >= 2,
            }
        )
    return rows


def _checkpoint(path: Path, kind: str, model: nn.Module, **fields: Any) -> LoadedCheckpoint:
    architecture = fields.pop("architecture", None) or _class_name(model)
    return LoadedCheckpoint(model, kind, path, file_sha256(path), architecture, **fields)


def _class_name(model: nn.Module) -> str:
    return getattr(model, "original_name", None) or type(model).__name__


def _torch_load(path: Path, trust: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if "Weights only load failed" in str(err):
            what = f"the Python object {found.group(1)}" if found else "Python objects other than tensors"
            raise ProbeError(f"Refused to load '{path}': it contains {what}; {TRUST_HINT}.") from None
        raise ProbeError(f"Checkpoint '{path}' is corrupt: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - torch reports corrupt files with many exception types
        raise ProbeError(f"Checkpoint '{path}' cannot be read (truncated or corrupt): {_first_line(err)}") from None


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"TorchScript archive '{path}' cannot be loaded: {_first_line(err)}") from None


def _load_export(path: Path) -> nn.Module:
    try:
        return torch.export.load(str(path)).module()
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"torch.export program '{path}' cannot be loaded: {_first_line(err)}") from None


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"Safetensors file '{path}' cannot be read: {_first_line(err)}") from None


def _from_pickle(path: Path, payload: Any, arch: str | None, arch_kwargs: dict[str, Any] | None) -> LoadedCheckpoint:
    if isinstance(payload, nn.Module):
        return _checkpoint(path, "pickled_module", payload)
    if isinstance(payload, dict) and payload.get("format") == FORMAT_NAME:
        return _self_describing(path, payload)
    state_dict = state_dict_in(payload)
    if state_dict is None:
        raise ProbeError(f"Checkpoint '{path}' holds no model weights (found {_payload_summary(payload)}).")
    return _from_state_dict(path, "state_dict", state_dict, arch, arch_kwargs)


def _self_describing(path: Path, payload: dict[str, Any]) -> LoadedCheckpoint:
    version = payload.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ProbeError(f"Checkpoint '{path}' has format version {version}; this tool reads up to {FORMAT_VERSION}.")
    model_args = payload.get("model_args")
    if not isinstance(model_args, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ProbeError(f"Checkpoint '{path}' says it is a landscape_probe checkpoint but lacks model_args or state_dict.")
    model = build_model(model_args)
    load_weights(model, payload["state_dict"], path)
    return _checkpoint(
        path,
        FORMAT_NAME,
        model,
        architecture=_describe_args(model_args),
        model_args=model_args,
        data=payload.get("data"),
        step=payload.get("step"),
        config=payload.get("config"),
        optimizer=payload.get("optimizer"),
    )


def _from_state_dict(
    path: Path, kind: str, state_dict: dict[str, Tensor], arch: str | None, arch_kwargs: dict[str, Any] | None
) -> LoadedCheckpoint:
    if arch is None:
        raise ProbeError(
            f"Checkpoint '{path}' holds only weights; name the architecture with --arch "
            "(a zoo spec such as mlp:depth=2,width=64, or an import path such as mypkg.models:make_net)."
        )
    model, model_args = build_architecture(arch, arch_kwargs or {}, state_dict)
    load_weights(model, state_dict, path)
    architecture = _describe_args(model_args) if model_args else f"{arch} ({_class_name(model)})"
    return _checkpoint(path, kind, model, architecture=architecture, model_args=model_args)


def _to_eval_float_cpu(model: nn.Module, exported: bool) -> None:
    model.to(device="cpu", dtype=torch.float32)
    if not exported:
        model.eval()
        return
    # an exported program's module() refuses .eval(); its train/eval behaviour was fixed at export time
    for module in model.modules():
        module.training = False


def _describe_args(model_args: dict[str, Any]) -> str:
    rest = " ".join(f"{key}={value}" for key, value in model_args.items() if key != "name")
    return f"{model_args.get('name', '?')} {rest}".strip()


def _payload_summary(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = ", ".join(map(str, list(payload)[:6]))
        return f"a dict with keys {keys}" if keys else "an empty dict"
    return f"a {type(payload).__name__}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__).rstrip(".") + "."
