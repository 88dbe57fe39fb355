"""Fit bare weights to an architecture: ``--arch`` specs, wrapper dicts, key prefixes.

A bare state_dict says nothing about the network it belongs to, so the user
names it with ``--arch``: a zoo spec (``mlp:depth=16,width=64``, where any MLP
size left out is read off the weight shapes) or an import path
``pkg.module:factory`` called with ``--arch-kwargs``. The weights are then
matched to the model's parameter names, after stripping the prefixes that
training wrappers add (``module.`` from DistributedDataParallel, ``model.``
from Lightning, ``_orig_mod.`` from ``torch.compile``).

Example:
    >>> import torch
    >>> model, args = build_architecture("mlp", {}, {"output.weight": torch.zeros(3, 5)})
    >>> args
    {'name': 'mlp', 'num_outputs': 3, 'depth': 1, 'in_features': 5, 'bias': False}
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.models.zoo import ZOO, build_model, parse_zoo_spec

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")


def state_dict_in(payload: Any) -> dict[str, Tensor] | None:
    """The state_dict inside a loaded payload: the payload itself or one of its wrapper keys; None if none."""
    if isinstance(payload, Mapping):
        for key in WRAPPER_KEYS:
            if _is_state_dict(payload.get(key)):
                return dict(payload[key])
    return dict(payload) if _is_state_dict(payload) else None


def build_architecture(
    arch: str, arch_kwargs: dict[str, Any], state_dict: dict[str, Tensor]
) -> tuple[nn.Module, dict[str, Any] | None]:
    """Build the model that ``--arch`` names.

    Args:
        arch: a zoo spec (``mlp:depth=2,width=64``) or an import path (``pkg.mod:factory``).
        arch_kwargs: extra zoo arguments, or the factory's keyword arguments.
        state_dict: the weights, used to fill in MLP sizes the spec leaves out.

    Returns:
        The model and its zoo ``model_args`` (None for an import path).

    Raises:
        ProbeError: for a spec that is neither, an import that fails, or a factory
            that fails or returns something other than an ``nn.Module``.
    """
    name, sep, rest = arch.partition(":")
    if name.strip() in ZOO:
        model_args = {**parse_zoo_spec(arch), **arch_kwargs}
        if model_args["name"] == "mlp":
            _infer_mlp_sizes(model_args, state_dict)
        return build_model(model_args), model_args
    if sep and rest.isidentifier():
        return _call_factory(name.strip(), rest, arch_kwargs), None
    raise ProbeError(
        f"Cannot read --arch '{arch}': give a zoo spec ({', '.join(sorted(ZOO))}:key=value,...) "
        "or an import path module:factory."
    )


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], path: Path) -> None:
    """Copy ``state_dict`` into ``model``, after stripping wrapper prefixes.

    Raises:
        ProbeError: naming the missing, unexpected and wrongly shaped entries when they do not fit.
    """
    expected = model.state_dict()
    state_dict = align_keys(state_dict, expected)
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong_shape = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    problems = [
        f"{label} {_some(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs model)", wrong_shape))
        if names
    ]
    if problems:
        raise ProbeError(f"The weights in '{path}' do not fit the architecture: {'; '.join(problems)}.")
    model.load_state_dict(state_dict)


def align_keys(state_dict: dict[str, Tensor], expected: Iterable[str], depth: int = 3) -> dict[str, Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, ``_orig_mod.``, nested up to ``depth``) to match the most expected names.

    Ties keep the version with fewer prefixes stripped, so a model whose own
    names start with ``model.`` is left alone.
    """
    expected = set(expected)
    best, best_overlap = state_dict, len(expected & state_dict.keys())
    frontier = [state_dict]
    for _ in range(depth):
        frontier = [
            {key.removeprefix(prefix): value for key, value in candidate.items()}
            for candidate in frontier
            for prefix in WRAPPER_PREFIXES
            if any(key.startswith(prefix) for key in candidate)
        ]
        for candidate in frontier:
            overlap = len(expected & candidate.keys())
            if len(candidate) == len(state_dict) and overlap > best_overlap:
                best, best_overlap = candidate, overlap
    return best


def _infer_mlp_sizes(model_args: dict[str, Any], state_dict: dict[str, Tensor]) -> None:
    output_key = next((k for k in state_dict if k == "output.weight" or k.endswith(".output.weight")), None)
    if output_key is None:
        if "in_features" not in model_args or "num_outputs" not in model_args:
            raise ProbeError("Cannot read the MLP's sizes off these weights (no output.weight); give in_features and num_outputs in --arch.")
        return
    prefix = output_key.removesuffix("output.weight")
    hidden = []
    while f"{prefix}hidden.{len(hidden)}.weight" in state_dict:
        hidden.append(state_dict[f"{prefix}hidden.{len(hidden)}.weight"])
    output = state_dict[output_key]
    model_args.setdefault("num_outputs", output.shape[0])
    model_args.setdefault("depth", len(hidden) + 1)
    model_args.setdefault("in_features", (hidden[0] if hidden else output).shape[1])
    if hidden:
        model_args.setdefault("width", hidden[0].shape[0])
    model_args.setdefault("bias", f"{prefix}output.bias" in state_dict)
    if f"{prefix}norms.0.running_mean" in state_dict:
        model_args.setdefault("norm", "batch")
    elif f"{prefix}norms.0.weight" in state_dict:
        model_args.setdefault("norm", "layer")


def _call_factory(module_name: str, factory_name: str, kwargs: dict[str, Any]) -> nn.Module:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure while importing user code
        raise ProbeError(f"Cannot import '{module_name}' for --arch: {err}.") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ProbeError(f"Module '{module_name}' has no callable '{factory_name}' for --arch.")
    try:
        model = factory(**kwargs)
    except Exception as err:  # noqa: BLE001
        raise ProbeError(f"--arch {module_name}:{factory_name}(**{kwargs}) failed: {err}.") from None
    if not isinstance(model, nn.Module):
        raise ProbeError(f"--arch {module_name}:{factory_name} returned a {type(model).__name__}, not an nn.Module.")
    return model


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    )


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
