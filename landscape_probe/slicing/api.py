"""``lp.slice``: everything ``probe slice`` does, as one Python call that returns the result.

Load the model (or take the one given), choose the data, check the model accepts
it, draw the probe set, run :func:`~landscape_probe.slicing.engine.run_slice`
and record the provenance. ``probe slice`` is this call, then
:meth:`SliceResult.save`, the summary and the figures.

Example:
    >>> import torch
    >>> import landscape_probe.slicing.api as api
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> result = api.slice(model, (x, y), scales=(0.001, 0.01, 0.1), layers=True, device="cpu")
    >>> sorted(result.layers), result.scales.tolist()
    (['0.weight', '2.weight'], [0.001, 0.01, 0.1])
    >>> round(float(result.kappa[-1, 0]), 6)  # relative scaling: every layer moves by κ_l = t (float32)
    0.1
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.devices import exact_float32
from landscape_probe.errors import ProbeError
from landscape_probe.progress import Progress, progress_callback

if TYPE_CHECKING:
    from torch import nn

    from landscape_probe.slicing.result import SliceResult

__all__ = ["slice"]



@exact_float32()  # no TF32 on a GPU: see devices.exact_float32
def slice(  # noqa: A001 - the public name is lp.slice, as the command is probe slice
    model: nn.Module | str | Path,
    data: Any = None,
    *,
    scales: Sequence[float] | None = None,
    direction: str = "gradient",
    measure: str = "gradient",
    scaling: str | None = None,
    norm: str = "frobenius",
    layers: bool = False,
    select: str | None = None,
    include_1d: bool = False,
    probe_size: int = 512,
    split: str = "train",
    loss: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    power_iterations: int = 50,
    chunk_size: int = 1024,
    points_per_pass: int | str = "auto",
    memory_budget: str = "1GiB",
    max_scale: float | None = None,
    min_scale: float | None = None,
    points: int = 21,
    two_sided: bool = False,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    allow_nonfinite: bool = False,
    progress: bool | Progress = False,
    output_key: str | None = None,
    shard: str = "work",
) -> SliceResult:
    """Perturb the weights along a direction and measure how the function and gradient change.

    At every scale t the model W + t·u (u the direction scaled as ``scaling``
    says) is evaluated on the probe set and compared with t = 0, beside deep
    relative trust, drt(t) = Π_l (1 + κ_l(t)) − 1, and Euclidean trust,
    |λ_max|·||ΔW(t)|| / ||g(0)|| (DESIGN.md §3–§4). Keyword names are the
    ``probe slice`` options in snake_case.

    Args:
        model: an ``nn.Module`` (run on ``device`` in ``dtype`` and eval mode, then put back
            as it was; its weights are not changed) or a checkpoint file of any format ``probe info`` reads,
            or a Hugging Face ``save_pretrained`` folder.
        data: a built-in name (``"digits"``), spec or .npz/.pt path; an ``(x, y)``
            pair of tensors or arrays; a torch ``Dataset`` or ``DataLoader``; or
            None for the data set a self-describing checkpoint records; for a Hugging Face folder
            ``"text:FILE,seq_len=128"``, ``"jsonl:FILE,field=text"``, or None for seeded random token ids.
        scales: explicit positive scales t, increasing; default ``points``
            log-spaced scales from ``min_scale`` (``max_scale``/10⁵) to ``max_scale`` (default 1;
            100 for an optimizer direction, so that scales past the step are measured).
        direction: gradient (descent), random, eigenvector (top Hessian), ``hessian:K`` (the eigenvector
            of the K-th largest Hessian eigenvalue, by Lanczos) or ``hessian:FILE.h5:K`` (row K of the
            eigenvectors a ``probe hessian`` file saved for this checkpoint), ``checkpoint:OTHER.pt``, or
            ``optimizer:NAME[:lr]``: the update that optimiser (a name of the optimizer table or
            ``module:Class``) would take from W on the probe-set gradient: its first step from
            fresh state, or, for a ``probe train`` checkpoint of a run of that optimiser, the step
            it would take next from the saved state (and learning rate, unless ``lr`` is given).
            ``result.step_over_breakdown`` then says where that step sits against the breakdown scale.
        measure: gradient (every point's gradient, λ_max at W, every prediction) or loss: forward passes
            only (loss, accuracy, relative function change and KL beside deep relative trust; the gradient
            change, λ_max, the loss models and the breakdown scale are NaN, and ``layers`` is refused).
        scaling: relative (κ_l = t), global (||ΔW|| = t), filter or none
            (ΔW = t·d); default relative, none for a checkpoint or optimizer direction (t = 1 is
            the other checkpoint, or the optimiser's actual step).
        norm: frobenius, spectral or neuron, for κ and relative scaling.
        layers: also sweep each layer alone (``result.layers[name]``).
        select: glob(s) on parameter names to perturb, e.g. ``"hidden.*"``.
        include_1d: also perturb biases and normalisation parameters.
        probe_size: examples in the probe set (all of the split when fewer).
        split: train or test: where the probe set comes from.
        loss: cross_entropy or mse; default from the data (classes or values).
        device: auto, cpu, cuda or cuda:N.
        dtype: float32 or float64.
        seed: of the probe set, a random direction and (where the step cannot start it) Lanczos for λ_max.
        power_iterations: most Hessian-vector products for λ_max.
        chunk_size: most probe examples per forward and backward pass; a larger probe set is taken in
            chunks and its mean loss and gradient accumulated (the numbers do not depend on it beyond rounding).
        points_per_pass: ``"auto"`` or N: points evaluated together, in one ``torch.func.vmap`` pass per
            chunk (the same numbers up to rounding); ``"auto"`` takes as many as ``memory_budget`` holds on a
            GPU (at most 32) and 1 on a CPU, where batching measured no faster. One at a time anyway for a
            TorchScript model, a model that fails under vmap, and ``measure="loss"``
            (:mod:`~landscape_probe.slicing.batched_points`).
        memory_budget: the memory ``"auto"`` may give one pass's points, e.g. ``"512MiB"``, ``"2GiB"``.
        two_sided: also evaluate −t for every t.
        arch, arch_kwargs, trust_checkpoint: loading options for a checkpoint path (see ``probe info``).
        allow_nonfinite: slice weights holding NaN or infinite values instead of refusing them; the
            numbers are recorded as they come out, and every shape and verdict is
            "undefined: non-finite values at W".
        progress: True for a progress bar; or a callable ``progress(done, total, label)``.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the key or index of the
            output to measure (default: the output a ``probe train`` run checkpoint was trained on, else
            ``logits``, else the first tensor; recorded as ``output_key``).
        shard: under ``torchrun``, ``work``: the points, and the layers of ``layers``, are divided among the
            ranks; or ``data``: the probe set is, each rank evaluating every point on its contiguous part, and
            every quantity is summed over the ranks' examples (loss, gradient, Hessian-vector products,
            function change, accuracy, KL). Either way every rank returns the whole result, equal to one
            process's (bit for bit with ``work`` on CPUs; to the order of the sums with ``data``;
            docs/distributed.md).

    Returns:
        The :class:`~landscape_probe.slicing.result.SliceResult`, not yet saved.

    Raises:
        ProbeError: for bad settings, an unreadable checkpoint or data, a model that does not fit the data,
            or (without ``allow_nonfinite``) weights that are not finite.
    """
    from landscape_probe import distributed
    from landscape_probe.slicing.config import SliceConfig, log_scales

    config = SliceConfig(
        direction=direction,
        seed=seed,
        scaling=scaling,
        norm=norm,
        scales=tuple(float(t) for t in scales) if scales is not None else log_scales(
            _default_max_scale(direction) if max_scale is None else max_scale, points, min_scale),
        two_sided=two_sided,
        per_layer=layers,
        select=select,
        include_1d=include_1d,
        probe_size=probe_size,
        loss=loss,
        device=device,
        dtype=dtype,
        power_iterations=power_iterations,
        chunk_size=chunk_size,
        measure=measure,
        points_per_pass=points_per_pass,
        memory_budget=memory_budget,
    )
    config.check()
    distributed.check_shard(shard)
    with distributed.process_group(device):
        return _slice(model, data, config, loaded_from=(arch, arch_kwargs, trust_checkpoint, allow_nonfinite),
                      split=split, loss=loss, seed=seed, progress=progress,
                      output_key=output_key, shard=shard)


def _slice(model: nn.Module | str | Path, data: Any, config: Any, *, loaded_from: tuple, split: str,
           loss: str | None, seed: int, progress: bool | Progress, output_key: str | None,
           shard: str) -> SliceResult:
    """:func:`slice` once its settings are checked (and, under ``torchrun``, the ranks joined)."""
    from landscape_probe.data.compatibility import check_model_accepts
    from landscape_probe.data.datasets import probe_set
    from landscape_probe.data.inputs import dataset_for
    from landscape_probe.devices import resolve_device
    from landscape_probe.hdf5 import provenance
    from landscape_probe.losses import loss_for
    from landscape_probe.models.outputs import key_or_recorded, selecting_output
    from landscape_probe.slicing.engine import run_slice

    arch, arch_kwargs, trust_checkpoint, allow_nonfinite = loaded_from
    used_device = resolve_device(config.device)
    loaded = (
        _load(model, arch, arch_kwargs, trust_checkpoint, allow_nonfinite) if isinstance(model, (str, Path)) else None
    )
    module = loaded.model if loaded else model
    if not allow_nonfinite:
        _check_finite(module)
    dataset = dataset_for(data, loaded)
    with selecting_output(module, key_or_recorded(output_key, loaded)) as chosen:
        check_model_accepts(module, dataset)
        x, y = probe_set(dataset, config.probe_size, seed, split)
        config = dataclasses.replace(config, probe_size=len(x))  # the number used, when the split holds fewer
        other, step = None, ""
        if config.direction_kind == "checkpoint":
            other = _load(config.direction.partition(":")[2], arch, arch_kwargs, trust_checkpoint, allow_nonfinite)
        if config.direction_kind == "hessian":
            from landscape_probe.curvature.hessian_direction import check_hessian_file

            check_hessian_file(config.direction, loaded.sha256 if loaded else "")
        with progress_callback(progress) as report, _left_as_given(module):
            target = other.model if other else None
            if config.direction_kind == "optimizer":
                target, step = _optimizer_target(module, x, y, loss_for(dataset, loss), config, loaded)
            result = run_slice(module, x, y, loss_for(dataset, loss), config, report, target, shard)
    if step and config.measure == "gradient":  # a loss-only line has no breakdown scale to set the step against
        from landscape_probe.slicing.optimizer_direction import step_over_breakdown

        result = dataclasses.replace(
            result, step_over_breakdown=step_over_breakdown(result.breakdown_scale, config.resolved_scaling)
        )
    attrs = provenance(command_line=_call_text(model, data, config), device=str(used_device), seed=seed,
                       checkpoint=loaded.path if loaded else None, checkpoint_sha256=loaded.sha256 if loaded else "")
    attrs.update(
        checkpoint_format=loaded.format if loaded else "module",
        architecture=loaded.architecture if loaded else type(module).__name__,
        data=json.dumps(dataset.spec, sort_keys=True),
        split=split,
        other_checkpoint_sha256=other.sha256 if other else "",
        output_key=chosen.text,
        **({"optimizer_step": step} if step else {}),
    )
    return dataclasses.replace(result, provenance=attrs)


def _load(
    path: str | Path, arch: str | None, arch_kwargs: dict[str, Any] | None, trust: bool, allow_nonfinite: bool
) -> Any:
    from landscape_probe.checkpoints.load import load_checkpoint

    return load_checkpoint(path, arch, arch_kwargs, trust, allow_nonfinite=allow_nonfinite)


def _default_max_scale(direction: str) -> float:
    """The largest default scale: 1, or 100 for an optimizer direction (t = 1 is its step; its breakdown may lie past it)."""
    return 100.0 if direction.split(":", 1)[0] == "optimizer" else 1.0


def _optimizer_target(module: nn.Module, x: Any, y: Any, loss_name: str, config: Any, loaded: Any) -> tuple[Any, str]:
    """The network after the optimiser's step from W, in the slice's device and dtype, and which step it is.

    The engine slices toward it as toward a second checkpoint: W_after − W_before over the perturbed layers.
    """
    import torch

    from landscape_probe.devices import resolve_device
    from landscape_probe.slicing.optimizer_direction import stepped_model

    from landscape_probe.params import select_layers

    dtype, device = torch.float64 if config.dtype == "float64" else torch.float32, resolve_device(config.device)
    target, step = stepped_model(module, x, y, loss_name, config.direction, device=device, dtype=dtype, saved=loaded)
    after, before = dict(target.named_parameters()), dict(module.named_parameters())
    if all(torch.equal(after[n], before[n].to(device=device, dtype=dtype))
           for n in select_layers(module, config.select, config.include_1d)):
        raise ProbeError(f"The step of {step.split(',')[0]} moves none of the perturbed layers; choose others with "
                         "--select or --include-1d.")
    return target, step


def _check_finite(module: nn.Module) -> None:
    """Refuse a module given in Python whose parameters or floating buffers hold NaN or ±inf (as the loader does)."""
    import torch

    for name, tensor in module.state_dict().items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ProbeError(
                f"The model holds non-finite weights ({bad} of the {tensor.numel()} values of {name} are NaN or "
                "infinite), so nothing measured at them would mean anything; pass allow_nonfinite=True to slice "
                "it anyway."
            )


def _call_text(model: Any, data: Any, config: Any) -> str:
    """How the call reads, for the ``command_line`` provenance of a result made in Python."""
    model_text = repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__
    data_text = repr(str(data)) if isinstance(data, (str, Path)) else type(data).__name__
    measure = "" if config.measure == "gradient" else f", measure={config.measure!r}"
    return f"lp.slice({model_text}, {data_text}, direction={config.direction!r}{measure}, scales={list(config.scales)})"


@contextlib.contextmanager
def _left_as_given(module: nn.Module) -> Iterator[None]:
    """Put a user's module back on its device, dtype and train/eval mode after the slice moved it."""
    from landscape_probe.models.modes import evaluating, placed

    first = next(module.parameters(), None)
    where = (first.device, first.dtype) if first is not None else None
    try:
        with evaluating(module):
            yield
    finally:
        if where is not None:
            placed(module, where[0], where[1])
