"""``lp.interpolate``: loss, accuracy and function change on the line between two checkpoints.

Example:
    >>> import torch
    >>> a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> result = interpolate(a, b, (x, y), alphas=[0.0, 0.5, 1.0], device="cpu")
    >>> result.alphas.tolist(), float(result.relative_function_change[0])
    ([0.0, 0.5, 1.0], 0.0)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.landscape.interpolation import InterpolationResult, barrier_height

Progress = Callable[[int, int, str], None]


def interpolate(
    a: nn.Module | str | Path,
    b: nn.Module | str | Path,
    data: Any = None,
    *,
    alphas: Sequence[float] | None = None,
    range: str = "-0.5:1.5:41",  # noqa: A002 - the option is --range
    probe_size: int = 512,
    split: str = "train",
    loss: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    progress: bool | Progress = False,
) -> InterpolationResult:
    """Evaluate W(α) = (1 − α)·W_A + α·W_B on the probe set at every α (forward passes only).

    Every floating-point parameter and buffer is interpolated (a batch norm's
    running statistics too), so that α = 0 and α = 1 are the two networks
    exactly; both are always among the αs, which are sorted.

    Args:
        a, b: two models of the same architecture: ``nn.Module`` s (not changed) or checkpoint files.
        data: as ``lp.slice`` takes it; default: the data set recorded in A's checkpoint.
        alphas: explicit positions; otherwise ``range`` as ``START:STOP:COUNT``.
        probe_size, split, loss, device, dtype, seed: as ``lp.slice``.
        arch, arch_kwargs, trust_checkpoint: loading options for checkpoint files (see ``probe info``).
        progress: True for a progress bar; or a callable ``progress(done, total, label)``.

    Raises:
        ProbeError: for checkpoints of different architectures, bad settings, or unreadable files or data.
    """
    import torch

    from landscape_probe.data.compatibility import check_model_accepts
    from landscape_probe.data.datasets import load_dataset_spec, probe_set
    from landscape_probe.data.inputs import as_dataset
    from landscape_probe.devices import resolve_device
    from landscape_probe.hdf5 import provenance
    from landscape_probe.landscape.forward import ForwardEvaluator, model_state, relative_change
    from landscape_probe.landscape.grid import parse_range
    from landscape_probe.losses import loss_for
    from landscape_probe.models.modes import eval_mode
    from landscape_probe.params import select_layers
    from landscape_probe.slicing.api import _progress
    from landscape_probe.slicing.directions import check_same_parameters

    if dtype not in ("float32", "float64"):
        raise ProbeError(f"Unknown dtype '{dtype}'; use float32 or float64.")
    positions = np.asarray(alphas, dtype=np.float64) if alphas is not None else parse_range(range)
    if not np.all(np.isfinite(positions)):
        raise ProbeError("Every α must be a finite number.")
    positions = np.union1d(positions, [0.0, 1.0])
    used_device, torch_dtype = resolve_device(device), torch.float64 if dtype == "float64" else torch.float32
    loaded_a, model_a = _model(a, arch, arch_kwargs, trust_checkpoint)
    loaded_b, model_b = _model(b, arch, arch_kwargs, trust_checkpoint)
    state_a, state_b = model_state(model_a), model_state(model_b)
    check_same_parameters(state_a, state_b)
    if data is not None:
        dataset = as_dataset(data)
    elif loaded_a is not None and loaded_a.data:
        dataset = load_dataset_spec(loaded_a.data)
    else:
        raise ProbeError("Checkpoint A does not record its data set; name one with --data (data= in Python).")
    check_model_accepts(model_a, dataset)
    x, y = probe_set(dataset, probe_size, seed, split)
    model = eval_mode(model_a.to(device=used_device, dtype=torch_dtype))
    x = x.to(device=used_device, dtype=torch_dtype if torch.is_floating_point(x) else x.dtype)
    y = y.to(device=used_device, dtype=torch_dtype if torch.is_floating_point(y) else y.dtype)
    loss_name = loss_for(dataset, loss)
    evaluator = ForwardEvaluator(model, x, y, loss_name)
    start = evaluator.base
    end = {name: state_b[name].to(device=used_device, dtype=tensor.dtype) for name, tensor in start.items()}
    rows = []
    with _progress(progress) as report:
        reference = evaluator.evaluate(start).outputs
        for i, alpha in enumerate(positions.tolist()):
            state = {name: (1.0 - alpha) * start[name] + alpha * end[name] for name in start}
            at = evaluator.evaluate(state)
            rows.append((at.loss, at.accuracy, relative_change(at.outputs, reference)))
            if report:
                report(i + 1, len(positions), "interpolating")
    loss_values, accuracy, function_change = (np.array(column, dtype=np.float64) for column in zip(*rows))
    layers = [name for name in select_layers(model) if name in start]
    kappa = np.array([float((end[k] - start[k]).double().norm() / start[k].double().norm()) for k in layers])
    step = float(torch.sqrt(sum(((end[k] - start[k]).double() ** 2).sum() for k in start)))
    attrs = provenance(command_line=_call_text(a, b), device=str(used_device), seed=seed,
                       checkpoint=loaded_a.path if loaded_a else None,
                       checkpoint_sha256=loaded_a.sha256 if loaded_a else "")
    attrs.update(
        other_checkpoint_path=str(Path(loaded_b.path).resolve()) if loaded_b else "",
        other_checkpoint_sha256=loaded_b.sha256 if loaded_b else "",
        architecture=loaded_a.architecture if loaded_a else type(model_a).__name__,
        data=json.dumps(dataset.spec, sort_keys=True),
    )
    return InterpolationResult(
        alphas=positions,
        loss=loss_values,
        accuracy=accuracy if evaluator.classification else None,
        relative_function_change=function_change,
        drt_prediction=np.prod(1.0 + np.abs(positions)[:, None] * kappa[None, :], axis=1) - 1.0,
        layer_names=layers,
        kappa=kappa,
        drt_step=float(np.prod(1.0 + kappa) - 1.0),
        step_norm=step,
        loss_a=float(loss_values[positions == 0][0]),
        loss_b=float(loss_values[positions == 1][0]),
        barrier_height=barrier_height(positions, loss_values),
        settings={"probe_size": len(x), "split": split, "dtype": dtype},
        loss_name=loss_name,
        classification=evaluator.classification,
        provenance=attrs,
    )


def _model(model: nn.Module | str | Path, arch: str | None, arch_kwargs: dict[str, Any] | None,
           trust: bool) -> tuple[Any, nn.Module]:
    """The loaded checkpoint (None for a module) and a module this call may move: a copy of a user's module."""
    if isinstance(model, (str, Path)):
        from landscape_probe.checkpoints.load import load_checkpoint

        loaded = load_checkpoint(model, arch, arch_kwargs, trust)
        return loaded, loaded.model
    return None, copy.deepcopy(model)


def _call_text(a: Any, b: Any) -> str:
    """How the call reads, for the ``command_line`` provenance of a result made in Python."""
    def text(model: Any) -> str:
        return repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__

    return f"lp.interpolate({text(a)}, {text(b)})"
