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
- ``hugging_face``: a ``save_pretrained`` folder (:mod:`landscape_probe.checkpoints.hf`).

Without ``trust`` every pickle is read with ``torch.load(weights_only=True)``,
which refuses any Python object other than tensors and plain containers, so a
hostile file cannot run code.

Example:
    >>> loaded = load_checkpoint("sample_checkpoints/mlp16_digits.pt")   # doctest: +SKIP
    >>> loaded.format, loaded.architecture                               # doctest: +SKIP
    ('landscape_probe', 'mlp depth=16 width=64 ...')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.checkpoints.architecture import (
    build_architecture,
    build_recorded,
    check_model_args,
    infer_architecture,
    is_import_path,
    load_weights,
    state_dict_in,
)
from landscape_probe.atomic import atomic_path
from landscape_probe.devices import portable
from landscape_probe.checkpoints.formats import (
    detect_format,
    file_sha256,
    quiet_loading,
    read_export,
    read_safetensors,
    read_torch_file,
    read_torchscript,
)
from landscape_probe.checkpoints.summary import all_finite
from landscape_probe.checkpoints.summary import describe_parameters, summarize, summarize_weights  # noqa: F401 - also importable from here, as before
from landscape_probe.errors import ProbeError
from landscape_probe.models.modes import eval_mode
from landscape_probe.models.zoo import build_on_meta

FORMAT_NAME = "landscape_probe"
FORMAT_VERSION = 1
CUSTOM = "custom"
"""``model_args["name"]`` of a user's own model, rebuilt from its recorded import path (``factory``)."""


class WeightsOnly(ProbeError):
    """Weights with no architecture given and none inferred, or one whose builder is not trusted; ``state_dict``
    holds them. ``probe info`` lists such tensors anyway; running the model needs ``--arch`` (or the trust)."""

    def __init__(self, message: str, state_dict: dict[str, Tensor]) -> None:
        super().__init__(message)
        self.state_dict = state_dict


@dataclass
class LoadedCheckpoint:
    """A model loaded from a checkpoint, with what the file says about it.

    Attributes:
        model: the network, in ``eval()`` mode, float32, on the CPU.
        format: landscape_probe, torchscript, export, state_dict, safetensors, pickled_module or hugging_face.
        path: the file it came from.
        sha256: hex digest of the file's bytes.
        architecture: human-readable, e.g. ``mlp depth=16 width=64`` or a class name.
        model_args: zoo arguments when known (always for ``landscape_probe``).
        data: the ``Dataset.spec`` recorded at training time.
        step: training step at which it was saved.
        config: the training configuration recorded with it.
        optimizer: the optimizer's state_dict, when saved.
        run: for a ``probe train`` run, which optimiser (``optimizer``), ``lr``, ``depth`` and ``seed`` it trained.
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
    run: dict[str, Any] | None = None


def load_checkpoint(
    path: Path | str,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
    *,
    allow_nonfinite: bool = False,
) -> LoadedCheckpoint:
    """Load a checkpoint of any supported format.

    Before any model is built, zip archives have their CRCs checked,
    TorchScript and ``torch.export`` archives are audited (see
    :mod:`landscape_probe.checkpoints.audit`), and a self-describing file's
    ``model_args`` are checked against the tensors it stores. After loading,
    weights must be real floating-point numbers, and finite unless
    ``allow_nonfinite``. A bare state_dict with no ``arch`` loads when its names
    and shapes are exactly those of a zoo MLP (the inferred spec becomes
    ``architecture``).

    Args:
        path: the checkpoint file, or a Hugging Face ``save_pretrained`` folder.
        arch: architecture for a bare state_dict or safetensors file: a zoo spec
            (``mlp:depth=16,width=64``; missing MLP sizes are read off the
            weights) or an import path ``pkg.module:factory``.
        arch_kwargs: keyword arguments for the factory (or extra zoo arguments).
        trust: allow unpickling arbitrary Python objects (whole ``nn.Module``s).
        allow_nonfinite: load weights holding NaN or infinite values (to look at them).

    Returns:
        The model in eval mode, float32, on the CPU, and the file's metadata.

    Raises:
        ProbeError: for a missing, unreadable, corrupt, unsafe or unsupported
            file, a missing architecture (:class:`WeightsOnly`), weights that do
            not fit it, or weights that are not real or (without
            ``allow_nonfinite``) not finite.
    """
    path = Path(path)
    if not path.exists():
        raise ProbeError(f"Checkpoint '{path}' does not exist.")
    if path.is_dir():
        from landscape_probe.checkpoints.hf import load_hf_folder

        loaded = load_hf_folder(path, trust)
    elif not path.is_file():
        raise ProbeError(f"Checkpoint '{path}' is not a file.")
    else:
        loaded = _from_file(path, detect_format(path), arch, arch_kwargs, trust)
    _check_real(loaded.model, path)
    eval_mode(loaded.model.to(device="cpu", dtype=torch.float32))
    if not allow_nonfinite:
        _check_finite(loaded.model, path)
    return loaded


def _from_file(path: Path, kind: str, arch: str | None, arch_kwargs: dict[str, Any] | None,
               trust: bool) -> LoadedCheckpoint:
    with quiet_loading():
        if kind == "torchscript":
            return _checkpoint(path, "torchscript", read_torchscript(path, trust))
        if kind == "export":
            return _checkpoint(path, "export", read_export(path, trust))
        if kind == "safetensors":
            return _from_state_dict(path, "safetensors", read_safetensors(path), arch, arch_kwargs)
        return _from_pickle(path, read_torch_file(path, trust), arch, arch_kwargs, trust)


def save_checkpoint(
    path: Path | str,
    model: nn.Module,
    model_args: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None = None,
    step: int | None = None,
    config: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> None:
    """Write a self-describing checkpoint atomically (temporary file, then rename).

    The file is a plain dict that ``torch.load(weights_only=True)`` reads, so
    ``config`` and ``data`` must hold only strings, numbers, booleans, lists and dicts; every tensor is saved
    from the CPU (:func:`~landscape_probe.devices.portable`), so it reads back on a machine without a GPU."""
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_args": dict(model_args),
        "state_dict": portable(model.state_dict()),
    }
    optimizer = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    extras = {"optimizer": portable(optimizer), "step": step, "config": config, "data": data, "run": run}
    payload.update({key: value for key, value in extras.items() if value is not None})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _checkpoint(path: Path, kind: str, model: nn.Module, **fields: Any) -> LoadedCheckpoint:
    architecture = fields.pop("architecture", None) or _class_name(model)
    return LoadedCheckpoint(model, kind, path, file_sha256(path), architecture, **fields)


def _class_name(model: nn.Module) -> str:
    return getattr(model, "original_name", None) or type(model).__name__


def _from_pickle(path: Path, payload: Any, arch: str | None, arch_kwargs: dict[str, Any] | None,
                 trust: bool) -> LoadedCheckpoint:
    if isinstance(payload, nn.Module):
        return _checkpoint(path, "pickled_module", payload)
    if isinstance(payload, dict) and payload.get("format") == FORMAT_NAME:
        return _self_describing(path, payload, arch, arch_kwargs, trust)
    state_dict = state_dict_in(payload)
    if state_dict is None:
        raise ProbeError(f"Checkpoint '{path}' holds no model weights (found {_payload_summary(payload)}).")
    return _from_state_dict(path, "state_dict", state_dict, arch, arch_kwargs)


def _self_describing(path: Path, payload: dict[str, Any], arch: str | None, arch_kwargs: dict[str, Any] | None,
                     trust: bool) -> LoadedCheckpoint:
    version = payload.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProbeError(f"Checkpoint '{path}' has format_version {version!r}; it must be a whole number from 1 to {FORMAT_VERSION}.")
    if version > FORMAT_VERSION:
        raise ProbeError(f"Checkpoint '{path}' has format version {version}; this tool reads up to {FORMAT_VERSION}.")
    model_args, state_dict = payload.get("model_args"), payload.get("state_dict")
    if not isinstance(model_args, dict) or not _holds_only_tensors(state_dict):
        raise ProbeError(f"Checkpoint '{path}' says it is a landscape_probe checkpoint but lacks model_args or state_dict.")
    if arch is not None or model_args.get("name") == CUSTOM:  # the user's --arch wins over what the file records
        model, architecture = _custom_model(path, model_args, state_dict, arch, arch_kwargs, trust)
    else:
        check_model_args(model_args, state_dict, f"Checkpoint '{path}'")
        model, architecture = build_on_meta(model_args), _describe_args(model_args)
    load_weights(model, state_dict, path)
    return _checkpoint(
        path,
        FORMAT_NAME,
        model,
        architecture=architecture,
        model_args=model_args,
        data=payload.get("data"),
        step=payload.get("step"),
        config=payload.get("config"),
        optimizer=payload.get("optimizer"),
        run=payload.get("run"),
    )


def _custom_model(
    path: Path, model_args: dict[str, Any], state_dict: dict[str, Tensor], arch: str | None,
    arch_kwargs: dict[str, Any] | None, trust: bool,
) -> tuple[nn.Module, str]:
    """A user's own model (:func:`~landscape_probe.checkpoints.architecture.build_recorded`) and how it reads;
    calling the function the file names runs code the file chose, so it needs ``trust`` (or the user's ``arch``)."""
    if arch is not None:
        model, zoo_args = build_architecture(arch, arch_kwargs or {}, state_dict)
        return model, _describe_args(zoo_args) if zoo_args else f"{arch} ({_class_name(model)})"
    if not trust and is_import_path(str(model_args.get("factory", ""))):
        raise WeightsOnly(
            f"Checkpoint '{path}' records its model as built by {model_args.get('factory', '?')}, and building it "
            "would run code the file names; if you trust the file pass --trust-checkpoint (trust_checkpoint=True "
            "in Python), or name the function yourself with --arch module:function.",
            state_dict,
        )
    model = build_recorded(path, model_args)
    kwargs = model_args.get("arch_kwargs") or {}
    shown = f"{model_args['factory']}(**{json.dumps(kwargs, sort_keys=True)})" if kwargs else model_args["factory"]
    return model, f"{shown} ({_class_name(model)})"


def _from_state_dict(
    path: Path, kind: str, state_dict: dict[str, Tensor], arch: str | None, arch_kwargs: dict[str, Any] | None
) -> LoadedCheckpoint:
    if arch is None:
        inferred = infer_architecture(state_dict)
        if inferred is None:
            raise WeightsOnly(
                f"Checkpoint '{path}' holds only weights that match no zoo model; name the architecture with --arch "
                "(a zoo spec such as mlp:depth=2,width=64, or an import path such as mypkg.models:make_net).",
                state_dict,
            )
        model, model_args = inferred
        load_weights(model, state_dict, path)
        architecture = f"{_describe_args(model_args)} (inferred from the weights; give --arch if the activation differs)"
        return _checkpoint(path, kind, model, architecture=architecture, model_args=model_args)
    model, model_args = build_architecture(arch, arch_kwargs or {}, state_dict)
    load_weights(model, state_dict, path)
    architecture = _describe_args(model_args) if model_args else f"{arch} ({_class_name(model)})"
    return _checkpoint(path, kind, model, architecture=architecture, model_args=model_args)


def _holds_only_tensors(state_dict: Any) -> bool:
    return isinstance(state_dict, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state_dict.items())


def _check_real(model: nn.Module, path: Path) -> None:
    wrong = [f"{name} ({p.dtype})" for name, p in model.named_parameters() if not p.is_floating_point()]
    if wrong:
        raise ProbeError(f"The weights in '{path}' must be real floating-point numbers, but {', '.join(wrong[:5])} are not.")


def _check_finite(model: nn.Module, path: Path) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not all_finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ProbeError(
                f"Checkpoint '{path}' holds non-finite weights ({bad} of the {tensor.numel()} values of {name} "
                "are NaN or infinite), so nothing measured at them would mean anything; "
                "probe info --allow-nonfinite shows which tensors are affected."
            )


def _describe_args(model_args: dict[str, Any]) -> str:
    rest = " ".join(f"{key}={value}" for key, value in model_args.items() if key != "name")
    return f"{model_args.get('name', '?')} {rest}".strip()


def _payload_summary(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = ", ".join(map(str, list(payload)[:6]))
        return f"a dict with keys {keys}" if keys else "an empty dict"
    return f"a {type(payload).__name__}"
