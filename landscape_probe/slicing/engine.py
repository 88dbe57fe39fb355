"""The slicing engine of ``probe slice``: walk W + t·u and measure what changes.

For a direction d and scaling mode (DESIGN.md §2) the unit step u is fixed once,
so that ΔW(t) = t·u. At every scale t the model is evaluated on the probe set
(:class:`~landscape_probe.slicing.evaluator.ProbeEvaluator`, no model copies) and
compared with t = 0 (DESIGN.md §3):

    relative_function_change(t) = ||F(t) − F(0)||_F / ||F(0)||_F
    relative_gradient_change(t) = ||g(t) − g(0)|| / ||g(0)||      (and per layer)
    kl_divergence(t)            = mean_n KL(p_0(·|x_n) || p_t(·|x_n))
    step_norm(t) = |t|·||u||,   kappa_l(t) = |t|·||u_l|| / ||W_l||   (chosen norm)

Once, at W: λ_max (Lanczos on Hessian-vector products, all taken on the one
gradient graph of the first evaluation), the slope g·u and the curvature uᵀHu.
The predictions of DESIGN.md §4 come from :mod:`landscape_probe.slicing.trust`
(see :mod:`landscape_probe.slicing.predictions`).
With ``per_layer`` the same sweep is repeated perturbing one layer at a time
along that layer's part of the direction, with that layer's own gradient and
Hessian block; for a ``transformers`` model one group at a time: the embeddings,
each block's attention and MLP, the head (:mod:`landscape_probe.models.groups`).

A huge step may overflow: the non-finite values are recorded as they are and
counted, never raised. Weights that are not finite at W (a checkpoint loaded
with ``allow_nonfinite``) are sliced too, every verdict then being
``trust.UNDEFINED_AT_W``.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> result = run_slice(model, x, y, "cross_entropy", SliceConfig(scales=(0.01, 0.1)))
    >>> result.relative_function_change.shape
    (2,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from landscape_probe import params as P
from landscape_probe.curvature import hessian as curvature
from landscape_probe.curvature.lanczos import basis_fits
from landscape_probe.devices import exact_float32
from landscape_probe.data_shard import ProbeShard
from landscape_probe.errors import ProbeError
from landscape_probe.losses import classifies
from landscape_probe.models.groups import layer_groups
from landscape_probe.models.modes import eval_mode, placed
from landscape_probe.params import Params
from landscape_probe.progress import PointCounter, Progress  # Progress: ``progress(done, total, label)`` per point
from landscape_probe.slicing import batched_points, cached_prefix, directions
from landscape_probe.slicing.changes import OutputChanges, ratio_or_nan, record_point
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.evaluator import Evaluation, ProbeEvaluator
from landscape_probe.slicing.predictions import predict
from landscape_probe.slicing.result import Measurements, SliceResult, SliceSweep

__all__ = ["Progress", "run_slice", "direction_at_w"]


@exact_float32()  # no TF32 on a GPU: see devices.exact_float32
def run_slice(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_name: str,
    config: SliceConfig,
    progress: Progress | None = None,
    other: nn.Module | None = None,
    shard: str = "work",
) -> SliceResult:
    """Slice ``model`` along the configured direction on the probe set (x, y).

    Args:
        model: the network; it is moved to the configured device and dtype and put in ``eval()`` mode.
        x, y: the probe set.
        loss_name: the loss to measure.
        config: the slice settings (checked here).
        progress: called after every evaluated point.
        other: the second network, for a checkpoint direction.
        shard: under ``torchrun``, what the ranks divide: ``work`` the points and layers, ``data`` the probe set
            (:class:`~landscape_probe.data_shard.ProbeShard`).

    Returns:
        The measurements and predictions, as numpy arrays.

    Raises:
        ProbeError: for bad settings, no layer to perturb, or a missing second checkpoint.
    """
    from landscape_probe.devices import resolve_device

    config.check()
    device = resolve_device(config.device)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    model = eval_mode(placed(model, device, dtype))
    x = x.to(device=device, dtype=dtype if torch.is_floating_point(x) else x.dtype)
    y = y.to(device=device, dtype=dtype if torch.is_floating_point(y) else y.dtype)
    layer_names = P.select_layers(model, config.select, config.include_1d)
    if not layer_names:
        raise ProbeError("No parameter matches the layer selection; check --select and --include-1d.")
    scales = config.all_scales
    groups = layer_groups(model, layer_names) if config.per_layer else {}
    probe = ProbeShard(x, y, shard)
    my_groups = probe.share(list(groups.items()))

    nonfinite_weights = any(t.is_floating_point() and not bool(torch.isfinite(t).all())
                            for t in model.state_dict().values())
    if config.measure == "loss":
        from landscape_probe.slicing.line import loss_sweep

        counter = PointCounter(len(probe.share(list(range(len(scales))))), progress)  # this rank's, under torchrun
        whole = loss_sweep(model, probe, loss_name, layer_names, config, counter, other, nonfinite_weights)
        return _result(whole, {}, scales, model, layer_names, replace(config, points_per_pass=1), loss_name, y)
    evaluator = probe.evaluator(ProbeEvaluator(model, probe.x, probe.y, loss_name, layer_names, config.chunk_size,
                                               hold_weights_once=True))
    try:
        keep_graph = len(probe.x) <= config.chunk_size  # the whole probe set in one chunk: keep its graph
        at_zero, hessian = evaluator.evaluate_with_hessian(evaluator.base, keep_graph)
        negate = config.direction_kind == "gradient" and not groups  # u from g(0), no copy of −g(0) (same numbers)
        direction = at_zero.gradient if negate else direction_at_w(config, evaluator, at_zero, hessian, other,
                                                                   device, dtype)
        unit_step = partial(directions.flat_unit_step, direction, evaluator.base, config.resolved_scaling,
                            config.norm, sign=-1.0 if negate else 1.0)
        flat_unit = unit_step()
        direction = direction if groups else {}  # its memory back before λ_max and the points
        unit_step = unit_step if negate else None  # u again from g(0), which stays; no other direction is held
        budget = batched_points.parse_bytes(config.memory_budget)
        per_pass = batched_points.chosen(evaluator, config.points_per_pass, budget, len(scales))
        # whole runs of per_pass points to each rank, so that every pass is the one a single process makes
        points = [i for run in probe.share(batched_points.chunks(len(scales), per_pass)) for i in run]
        counter = PointCounter(len(points) + len(scales) * len(my_groups), progress)  # this rank's share
        whole = _sweep(evaluator, at_zero, hessian, flat_unit, scales, config, counter, "all layers", nonfinite_weights,
                       points, per_pass, probe=probe, rebuild_unit=unit_step)
        asked = config.points_per_pass
        if batched_points.refused(evaluator):  # the model raised under vmap: its points, and its layers', one by one
            per_pass = asked = 1
        layers, graph = {}, cached_prefix.traced(model) if my_groups else None
        for group, members in my_groups:
            if directions.vanishes(direction, members):  # nothing to step along: recorded as skipped, and why
                layers[group] = directions.VANISHED
                counter.advance(group, len(scales))
                continue
            alone = probe.evaluator(cached_prefix.evaluator_alone(model, probe.x, probe.y, loss_name, members,
                                                                  config.chunk_size, graph))
            at_zero_alone, hessian_alone = alone.evaluate_with_hessian(alone.base, keep_graph)
            unit_alone = directions.flat_unit_step({name: direction[name] for name in members}, alone.base,
                                                    config.resolved_scaling, config.norm)
            layers[group] = _sweep(alone, at_zero_alone, hessian_alone, unit_alone, scales, config, counter, group,
                                   nonfinite_weights, None,
                                   batched_points.chosen(alone, asked, budget, len(scales)),
                                   probe=probe)
    finally:
        evaluator.give_weights_back()
    layers = probe.gather_items(layers, list(groups))  # the other ranks' layers, under torchrun
    return _result(whole, layers, scales, model, layer_names, replace(config, points_per_pass=per_pass), loss_name, y)


def _result(whole: SliceSweep, layers: dict[str, SliceSweep], scales: np.ndarray, model: nn.Module,
            layer_names: list[str], config: SliceConfig, loss_name: str, y: Tensor) -> SliceResult:
    sizes = {name: tensor.numel() for name, tensor in model.named_parameters()}
    skipped = {name: why for name, why in layers.items() if isinstance(why, str)}  # see directions.vanishes
    return SliceResult(scales=scales, layer_names=list(layer_names),
                       layer_sizes=np.array([sizes[name] for name in layer_names], dtype=np.int64),
                       whole=whole, layers={k: v for k, v in layers.items() if k not in skipped},
                       skipped_layers=skipped, config=config, loss_name=loss_name, classification=classifies(y))


def direction_at_w(
    config: SliceConfig,
    evaluator: ProbeEvaluator,
    at_zero: Evaluation | None,
    hessian: curvature.GradientGraph | None,
    other: nn.Module | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Params:
    """The direction d at W over the perturbed layers; the gradient one is −g(0) over the whole probe set.

    ``hessian:K`` and ``eigenvector`` run Lanczos on ``hessian``, the gradient graph kept at W (no second graph
    is built). ``at_zero`` is needed only by the gradient direction and ``hessian`` only by those two (else None).
    """
    base = evaluator.base
    kind = config.direction_kind
    if kind == "gradient":
        return P.scale(-1.0, at_zero.gradient)
    if kind == "random":
        return directions.random_direction(base, config.seed)
    if kind == "eigenvector":
        return directions.eigenvector_direction(hessian, config.seed, iterations=config.power_iterations)
    if kind == "hessian":
        from landscape_probe.curvature.hessian_direction import hessian_direction

        return hessian_direction(config.direction, hessian, seed=config.seed, iterations=config.power_iterations,
                                 tolerance=config.power_tolerance)
    if other is None:
        raise ProbeError("A checkpoint direction needs the second checkpoint loaded.")
    # Every parameter, not only the perturbed ones, must pair up: two different architectures that happen to
    # share the perturbed layers' names and shapes are not two points of one landscape.
    everything = {name: tensor.detach() for name, tensor in evaluator.model.named_parameters()}
    other_params = {name: tensor.detach().to(device=device, dtype=dtype) for name, tensor in other.named_parameters()}
    directions.check_same_parameters(everything, other_params)
    return directions.checkpoint_direction(base, {name: other_params[name] for name in base})


def _sweep(
    evaluator: ProbeEvaluator,
    at_zero: Evaluation,
    hessian: curvature.GradientGraph,
    flat_unit: Tensor,
    scales: np.ndarray,
    config: SliceConfig,
    counter: PointCounter,
    label: str,
    nonfinite_weights: bool = False,
    points: list[int] | None = None,
    per_pass: int = 1,
    *,
    probe: ProbeShard,
    rebuild_unit: Callable[..., Tensor] | None = None,
) -> SliceSweep:
    """Evaluate W + t·u at every scale and set the predictions beside the measurements.

    λ_max and ``uᵀHu`` come first, from the gradient graph kept at W, which is
    then released: Lanczos starts from u, so ``uᵀHu`` is its first Rayleigh
    quotient. Memory is flat buffers the size of the perturbed layers, made
    once: W, g(0), u, and two that Lanczos's three-term recurrence uses when its
    basis would not fit (:func:`~landscape_probe.curvature.lanczos.basis_fits`),
    then W + t·u (one add writes every layer) and g(t) (accumulated in place by
    :meth:`ProbeEvaluator.evaluate`) at every point. With ``rebuild_unit`` (u
    from g(0), which stays), the recurrence runs in u's own buffer and u is
    written again afterwards, the same numbers, so one vector fewer is live
    beside the products' temporaries. The points' numbers stay on the device
    until the sweep ends (one copy to the host per column, not one per number). ``nonfinite_weights`` (W holds NaN or ±inf), or a step
    u that is not finite, makes every verdict of the sweep undefined
    (:func:`~landscape_probe.slicing.predictions.predict`).
    ``points``: the indices of ``scales`` evaluated here (the other ranks' are gathered, under ``torchrun``);
    ``probe``: the examples here, when the ranks divide the probe set (their sums are added up);
    ``per_pass``: points per vmapped pass (:class:`~landscape_probe.slicing.batched_points.PointPasses`);
    ``rebuild_unit``: writes u into the buffer given as ``out``.
    """
    base, g0 = evaluator.base, at_zero.gradient
    unit = P.unflatten(flat_unit, base)  # u held once, as views into flat_unit
    unit_kappa = directions.kappa(unit, base, config.norm)
    names = evaluator.layer_names
    classification = classifies(evaluator.y)
    unit_step_norm = float(P.norm(unit))
    usable, fits = 0.0 < unit_step_norm < float("inf"), basis_fits(flat_unit, config.power_iterations)
    in_place = rebuild_unit is not None and usable and not fits  # the only case in which Lanczos writes work[0]
    flat_gradient = torch.empty_like(flat_unit)
    flat_point = flat_unit if in_place else torch.empty_like(flat_unit)  # Lanczos's first vector, then W + t·u

    counter.note(f"{label}: λ_max")
    lambda_max, curvature_along_unit = _curvature_at_w(hessian, flat_unit, unit_step_norm, config,
                                                       (flat_point, flat_gradient), usable, fits)
    hessian.release()
    if in_place:
        rebuild_unit(out=flat_unit)
        flat_point = torch.empty_like(flat_unit)

    g0_parts = [g0[n] for n in names]
    g0_layer_norms = torch.stack(torch._foreach_norm(g0_parts))
    outputs = OutputChanges(at_zero.outputs, evaluator.y if classification else None)
    columns: dict[str, list[Tensor]] = {"loss": [], "gradient_change": []}
    mine = scales if points is None else scales[points]
    for at_t in batched_points.PointPasses(evaluator, flat_unit, mine, per_pass, (flat_point, flat_gradient)):
        record_point(columns, at_t, g0_parts, names, outputs)
        counter.advance(label)
    table = {key: torch.stack(values) for key, values in columns.items() if values} | outputs.finished()
    table = {key: values.double().cpu().numpy() for key, values in table.items()}
    table = probe.combined(probe.gather_rows(points, table, len(scales)), totals=("correct",),  # each rank's part
                           means=("kl_divergence",), norms=("function_change",))
    loss = table["loss"]
    function_change = ratio_or_nan(table["function_change"], probe.norm(at_zero.outputs))
    per_layer_change = table["gradient_change"].reshape(len(scales), len(names))
    gradient_norm = float(torch.linalg.vector_norm(g0_layer_norms))
    gradient_change = ratio_or_nan(np.sqrt(np.sum(per_layer_change**2, axis=1)), gradient_norm)
    measured = Measurements(
        layer_names=list(names),
        loss=loss,
        accuracy=table["correct"] / probe.count if classification else None,
        relative_function_change=function_change,
        relative_gradient_change=gradient_change,
        relative_gradient_change_per_layer=ratio_or_nan(per_layer_change, g0_layer_norms.double().cpu().numpy()),
        kl_divergence=table["kl_divergence"] if classification else None,
        step_norm=np.abs(scales) * unit_step_norm,
        kappa=np.outer(np.abs(scales), [float(unit_kappa[n]) for n in names]),
        lambda_max=lambda_max,
        loss_at_zero=float(at_zero.loss),
        gradient_norm=gradient_norm,
        unit_step_norm=unit_step_norm,
        slope=float(P.dot(g0, unit)),
        curvature=curvature_along_unit,
        nonfinite_points=int(np.sum(~np.isfinite(loss + function_change + gradient_change))),
    )
    undefined = nonfinite_weights or not all(bool(torch.isfinite(v).all()) for v in unit.values())
    predicted = predict(measured, scales, config.fit_points, nonfinite_at_w=undefined)
    return SliceSweep(**vars(measured), **vars(predicted))


def _curvature_at_w(
    hessian: curvature.GradientGraph, flat_unit: Tensor, unit_step_norm: float, config: SliceConfig,
    work: tuple[Tensor, Tensor], usable: bool, fits: bool,
) -> tuple[float, float]:
    """λ_max by Lanczos started from u, and ``uᵀHu = α₁ ||u||²`` from its first product.

    The full-basis Lanczos while its basis ``fits`` in memory, else the three-term
    recurrence in the two ``work`` buffers (the same eigenvalue to within the
    tolerance; :func:`~landscape_probe.curvature.lanczos.largest_magnitude_eigenvalue`).
    A step u that is zero or not finite (not ``usable``) cannot start the Krylov space: then the
    start is Gaussian (seeded) and ``uᵀHu`` takes a product of its own.
    """
    top = curvature.top_eigenpair(
        hessian,
        iterations=config.power_iterations,
        tolerance=config.power_tolerance,
        seed=config.seed,
        start=flat_unit if usable else None,
        keep_basis=fits,
        work=work,
    )
    if usable:
        return top.eigenvalue, top.lanczos.start_rayleigh_quotient * unit_step_norm**2
    return top.eigenvalue, float(flat_unit @ hessian.flat_hessian_vector_product(flat_unit, out=work[0]))
