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

import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError
from landscape_probe.user_code import import_attribute
from landscape_probe.models.zoo import ZOO, build_model, parse_zoo_spec
from landscape_probe.params import has_tied_parameters

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
MEMORY_SLACK = 1_000_000  # parameters a declared model may have beyond 4x the stored ones before it is refused unbuilt


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
    name, _, rest = arch.partition(":")
    if name.strip() in ZOO:
        model_args = {**parse_zoo_spec(arch), **arch_kwargs}
        if model_args["name"] == "mlp":
            _infer_mlp_sizes(model_args, state_dict)
        check_model_args(model_args, state_dict, f"--arch {arch}")
        return build_model(model_args), model_args
    if is_import_path(arch):
        return build_imported(arch, arch_kwargs), None
    raise ProbeError(
        f"Cannot read --arch '{arch}': give a zoo spec ({', '.join(sorted(ZOO))}:key=value,...) "
        "or an import path module:factory."
    )


def is_import_path(arch: str) -> bool:
    """Whether ``arch`` reads as an import path ``pkg.module:factory`` rather than a zoo spec."""
    name, sep, rest = arch.partition(":")
    return bool(sep) and name.strip() not in ZOO and bool(name.strip()) and rest.isidentifier()


def build_imported(arch: str, arch_kwargs: dict[str, Any]) -> nn.Module:
    """The model ``pkg.module:factory(**arch_kwargs)`` builds (the current folder is importable).

    Raises:
        ProbeError: the module does not import, has no such callable, or the call fails
            or returns something other than an ``nn.Module``.
    """
    module_name, _, factory_name = arch.partition(":")
    return _call_factory(module_name.strip(), factory_name, arch_kwargs)


def build_recorded(path: Path, model_args: dict[str, Any]) -> nn.Module:
    """The user's model a run checkpoint records as ``{"name": "custom", "factory": "pkg.mod:fn", "arch_kwargs"}``.

    Raises:
        ProbeError: in one sentence saying what to pass (``--arch``) when the recorded
            import path does not build here (a module not importable, a lambda).
    """
    recorded = str(model_args.get("factory", "?"))
    if not is_import_path(recorded):
        raise ProbeError(f"Checkpoint '{path}' was trained on the model '{recorded}', which cannot be imported by "
                         "name; pass --arch module:function (arch= in Python) naming a function that builds it.")
    try:
        return build_imported(recorded, model_args.get("arch_kwargs") or {})
    except ProbeError as err:
        raise ProbeError(
            f"Checkpoint '{path}' records its architecture as {recorded}, which cannot be built here "
            f"({str(err).rstrip('.')}); make that module importable (run from its folder or add it to PYTHONPATH), "
            "or pass --arch module:function and --arch-kwargs."
        ) from None


def infer_architecture(state_dict: dict[str, Tensor]) -> tuple[nn.Module, dict[str, Any]] | None:
    """The zoo model whose parameter names and shapes are exactly those of ``state_dict``, if any.

    Only the MLP's sizes can be read off its weights (an activation cannot:
    the default, relu, is assumed and shown in the returned ``model_args``).

    Returns:
        The model (weights not yet loaded) and its ``model_args``, or None when no zoo model fits.
    """
    model_args: dict[str, Any] = {"name": "mlp"}
    if not any(key == "output.weight" or key.endswith(".output.weight") for key in state_dict):
        return None
    try:
        _infer_mlp_sizes(model_args, state_dict)
        model_args["activation"] = "relu"
        check_model_args(model_args, state_dict, "the inferred architecture")
        model = build_model(model_args)
    except ProbeError:
        return None
    expected = model.state_dict()
    aligned = align_keys(state_dict, expected)
    if aligned.keys() != expected.keys() or any(aligned[k].shape != v.shape for k, v in expected.items()):
        return None
    return model, model_args


def check_model_args(model_args: dict[str, Any], state_dict: dict[str, Tensor], source: str) -> None:
    """Check a zoo ``model_args`` against its family's signature and the stored tensors, before building anything.

    Every size must be a whole number (``depth`` ≥ 0, others ≥ 1); no size may
    exceed what the file could hold (``depth`` the number of stored tensors,
    the others the number of stored scalars); and the model, built first on
    the ``meta`` device (no memory), may not have far more parameters than the
    file stores (beyond a slack that leaves room for a clearer shape-mismatch
    message on small models). So a file that declares ``depth=100000000`` is refused at once
    instead of building a network that fills the memory.

    Raises:
        ProbeError: naming the argument and what is wrong with it.
    """
    family = ZOO.get(model_args.get("name"))
    if family is None:
        raise ProbeError(f"{source} names the model '{model_args.get('name')}'; the zoo has {', '.join(sorted(ZOO))}.")
    stored = sum(t.numel() for t in state_dict.values())
    annotations = {name: str(p.annotation) for name, p in inspect.signature(family).parameters.items()}
    for key, value in model_args.items():
        annotation = annotations.get(key, "")
        if "int" not in annotation:
            continue
        sizes = value if "Sequence" in annotation and isinstance(value, (list, tuple)) else [value]
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int):
                raise ProbeError(f"{source} gives {key}={value!r}; it must be a whole number.")
            lowest, highest = (0, len(state_dict)) if key == "depth" else (1, stored)
            if size < lowest:
                raise ProbeError(f"{source} gives {key}={value!r}; it must be at least {lowest}.")
            if size > max(highest, 1):
                what = f"{len(state_dict):,} tensors" if key == "depth" else f"{stored:,} numbers"
                raise ProbeError(f"{source} gives {key}={value!r}, more than the {what} the file stores, so it cannot describe these weights.")
    try:
        with torch.device("meta"):
            declared = sum(p.numel() for p in build_model(model_args).parameters())
    except ProbeError:
        raise
    except Exception as err:  # noqa: BLE001 - a family rejecting a value it cannot use
        raise ProbeError(f"{source} cannot build a {model_args['name']}: {_first_line(err)}") from None
    if declared > 4 * stored + MEMORY_SLACK:
        raise ProbeError(f"{source} describes a model of {declared:,} parameters, but the file stores only {stored:,} numbers.")


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], path: Path) -> None:
    """Copy ``state_dict`` into ``model``, after stripping wrapper prefixes.

    A model built on the ``meta`` device (``zoo.build_on_meta``) takes the
    file's tensors as its own instead (:func:`_materialise`): no second copy of
    the weights is made.

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
    not_real = [
        f"{key} ({state_dict[key].dtype})"
        for key, value in expected.items()
        if key in state_dict and value.is_floating_point() and not state_dict[key].is_floating_point()
    ]
    if not_real:
        raise ProbeError(f"The weights in '{path}' must be real floating-point numbers, but {_some(not_real)} are not.")
    problems = [
        f"{label} {_some(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs model)", wrong_shape))
        if names
    ]
    if problems:
        raise ProbeError(f"The weights in '{path}' do not fit the architecture: {'; '.join(problems)}.")
    if any(value.is_meta for value in expected.values()):
        _materialise(model, state_dict, expected)
    else:
        model.load_state_dict(state_dict)


def _materialise(model: nn.Module, state_dict: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """Give a meta-device model the file's tensors as its parameters and buffers (``load_state_dict(assign=True)``).

    Only where they fit exactly: the same dtypes, no tied parameters (assigning
    would untie them) and no buffer the file lacks (a non-persistent one would
    stay on the meta device); otherwise the model gets empty CPU storage and
    the weights are copied in (and cast), as for any model.
    """
    tied = has_tied_parameters(model)
    unsaved = any(name not in expected for name, _ in model.named_buffers())
    if tied or unsaved or any(state_dict[key].dtype != value.dtype for key, value in expected.items()):
        model.to_empty(device="cpu")
        model.load_state_dict(state_dict)
    else:
        model.load_state_dict(state_dict, assign=True)


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
    if any(t.ndim != 2 for t in (output, *hidden)):
        raise ProbeError("Cannot read the MLP's sizes off these weights (a Linear weight is not a matrix); give them in --arch.")
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
    factory = import_attribute(module_name, factory_name, "--arch")
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__).rstrip(".") + "."


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
