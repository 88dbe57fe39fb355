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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from landscape_probe import distributed
from landscape_probe.devices import exact_float32
from landscape_probe.errors import ProbeError
from landscape_probe.landscape.interpolation import InterpolationResult, barrier_height
from landscape_probe.progress import Progress, progress_callback



@exact_float32()  # no TF32 on a GPU: see devices.exact_float32
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
    output_key: str | None = None,
) -> InterpolationResult:
    """Evaluate W(α) = (1 − α)·W_A + α·W_B on the probe set at every α (forward passes only).

    Every floating-point parameter and buffer is interpolated (a batch norm's
    running statistics too), so that α = 0 and α = 1 are the two networks
    exactly; both are always among the αs, which are sorted. Under ``torchrun``
    the αs are divided among the ranks (the i-th to rank i mod N) and gathered,
    so that every rank returns the whole line, equal to one process's.

    Args:
        a, b: two models of the same architecture: ``nn.Module`` s (not changed) or checkpoint files.
        data: as ``lp.slice`` takes it; default: the data set recorded in A's checkpoint.
        alphas: explicit positions; otherwise ``range`` as ``START:STOP:COUNT`` or ``(start, stop, count)``.
        probe_size, split, loss, device, dtype, seed: as ``lp.slice``.
        arch, arch_kwargs, trust_checkpoint: loading options for checkpoint files (see ``probe info``).
        progress: True for a progress bar; or a callable ``progress(done, total, label)``.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the output to measure (as ``lp.slice``).

    Raises:
        ProbeError: for checkpoints of different architectures, bad settings, or unreadable files or data.
    """
    from landscape_probe.landscape.grid import parse_range

    positions = np.asarray(alphas, dtype=np.float64) if alphas is not None else parse_range(range)
    if not np.all(np.isfinite(positions)):
        raise ProbeError("Every α must be a finite number.")
    positions = np.union1d(positions, [0.0, 1.0])
    with distributed.process_group(device):
        return _interpolate(a, b, data, positions, dict(probe_size=probe_size, split=split, loss=loss, device=device,
                            dtype=dtype, seed=seed, arch=arch, arch_kwargs=arch_kwargs,
                            trust_checkpoint=trust_checkpoint, output_key=output_key), progress)


def _interpolate(a: nn.Module | str | Path, b: nn.Module | str | Path, data: Any, positions: np.ndarray,
                 options: dict[str, Any], progress: bool | Progress) -> InterpolationResult:
    """:func:`interpolate` once its αs are known (and, under ``torchrun``, the ranks joined)."""
    import torch

    from landscape_probe.forward import ForwardEvaluator, model_state, relative_change
    from landscape_probe.landscape.setup import load_model, probe_problem
    from landscape_probe.params import select_layers
    from landscape_probe.slicing.directions import check_same_parameters

    arch, arch_kwargs, trust_checkpoint = options["arch"], options["arch_kwargs"], options["trust_checkpoint"]
    loaded_b, model_b = load_model(b, arch, arch_kwargs, trust_checkpoint)
    problem = probe_problem(a, data, **options)
    model = problem.model
    evaluator = ForwardEvaluator(model, problem.x, problem.y, problem.loss_name)
    start, state_b = evaluator.base, model_state(model_b)
    check_same_parameters(start, state_b)
    end = {name: state_b[name].to(device=tensor.device, dtype=tensor.dtype) for name, tensor in start.items()}
    mine, rows = distributed.share(list(range(len(positions)))), []  # under torchrun, this rank's αs
    with progress_callback(progress) as report:
        reference = evaluator.evaluate(start).outputs
        for i, alpha in enumerate(positions[mine].tolist()):
            with torch.no_grad():  # (1 − α)·A + α·B written into the model's own tensors: A at 0, B at 1 exactly
                for name, slot in evaluator.slots.items():
                    torch.mul(start[name], 1.0 - alpha, out=slot).add_(end[name], alpha=alpha)
            at = evaluator.run()
            rows.append((at.loss, at.accuracy, relative_change(at.outputs, reference)))
            if report:
                report(i + 1, len(mine), "interpolating")
        evaluator.restore()
    names, table = ("loss", "accuracy", "function_change"), np.array(rows, dtype=np.float64).reshape(len(mine), 3)
    line = distributed.gather_rows(mine, {name: table[:, i] for i, name in enumerate(names)}, len(positions))
    loss_values, accuracy, function_change = (line[name] for name in names)
    layers = [name for name in select_layers(model) if name in start]
    kappa = np.array([float((end[k] - start[k]).double().norm() / start[k].double().norm()) for k in layers])
    step = float(torch.sqrt(sum(((end[k] - start[k]).double() ** 2).sum() for k in start)))
    attrs = problem.provenance(_call_text(a, b), options["seed"])
    attrs.update(other_checkpoint_path=str(Path(loaded_b.path).resolve()) if loaded_b else "",
                 other_checkpoint_sha256=loaded_b.sha256 if loaded_b else "")
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
        settings={"probe_size": len(problem.x), "split": options["split"], "dtype": options["dtype"]},
        loss_name=problem.loss_name,
        classification=evaluator.classification,
        provenance=attrs,
    )


def _call_text(a: Any, b: Any) -> str:
    """How the call reads, for the ``command_line`` provenance of a result made in Python."""
    def text(model: Any) -> str:
        return repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__

    return f"lp.interpolate({text(a)}, {text(b)})"
