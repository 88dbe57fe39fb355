"""The loss-only slice (``measure="loss"``): walk W + t·u with forward passes only.

At every scale t the model is evaluated once, with no gradient: the loss,
accuracy, relative function change ||F(t) − F(0)||_F / ||F(0)||_F and, for a
classifier, KL(p_0 || p_t) (DESIGN.md §3), beside deep relative trust and the
linear shape fitted to the function change (:func:`~landscape_probe.slicing.predictions.predict_function_only`).
No Hessian-vector product is taken and λ_max is not estimated; the gradient
change, λ_max, uᵀHu, the Euclidean gradient prediction, the loss models and
the breakdown scale are NaN, and the gradient verdict says it was not measured.
The gradient direction takes one gradient at W (one backward pass, at t = 0);
``random`` and ``checkpoint`` take none (``hessian:K`` and ``eigenvector`` take
the products their direction needs, and no more).

The moved layers are written into the model's own tensors
(:class:`~landscape_probe.forward.ForwardEvaluator`), packed into one flat
buffer so that a point is one ``torch.add(W, u, alpha=t, out=flat)``; the
model is given back with its values and its own storage when the line ends,
whatever happens. Each point's numbers stay on the device until the line ends.

Example:
    >>> import torch
    >>> from landscape_probe.slicing.engine import run_slice
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> result = run_slice(model, x, y, "cross_entropy", SliceConfig(scales=(0.01, 0.1), measure="loss"))
    >>> bool(np.isnan(result.relative_gradient_change).all()), result.relative_function_change.shape
    (True, (2,))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape_probe import params as P
from landscape_probe.data_shard import ProbeShard
from landscape_probe.forward import ForwardEvaluator
from landscape_probe.losses import classifies
from landscape_probe.slicing import directions
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.changes import OutputChanges, ratio_or_nan
from landscape_probe.slicing.engine import direction_at_w
from landscape_probe.slicing.evaluator import ProbeEvaluator
from landscape_probe.slicing.predictions import predict_function_only
from landscape_probe.slicing.result import Measurements, SliceSweep

__all__ = ["loss_sweep"]


def loss_sweep(
    model: nn.Module,
    probe: ProbeShard,
    loss_name: str,
    layer_names: list[str],
    config: SliceConfig,
    counter: Any,
    other: nn.Module | None = None,
    nonfinite_weights: bool = False,
) -> SliceSweep:
    """The sweep over all selected layers, forward passes only (see the module docstring).

    Args:
        model: the network, on the probe set's device and dtype, in ``eval()`` mode; its values are
            written in place during the line and put back (with storage of their own) before returning.
        probe: the probe set (this rank's part of it, when the ranks divide it), and loss_name its loss.
        layer_names: the perturbed layers.
        config: the slice settings (``measure == "loss"``).
        counter: the engine's progress counter (``advance(label)``).
        other: the second network, for a checkpoint or optimizer direction.
        nonfinite_weights: W holds NaN or ±inf: every verdict is undefined.
    """
    x, y = probe.x, probe.y
    device, dtype = x.device, next(model.parameters()).dtype
    evaluator = probe.evaluator(ProbeEvaluator(model, x, y, loss_name, layer_names, config.chunk_size))
    kind = config.direction_kind
    at_zero = evaluator.evaluate(evaluator.base) if kind == "gradient" else None  # the one gradient, at t = 0
    graph = evaluator.evaluate_with_hessian(evaluator.base)[1] if kind in ("hessian", "eigenvector") else None
    direction = direction_at_w(config, evaluator, at_zero, graph, other, device, dtype)
    if graph is not None:
        graph.release()
    base = evaluator.base
    scaling = config.resolved_scaling
    unit = direction if scaling == "none" else directions.unit_step(direction, base, scaling, config.norm)
    unit_kappa = directions.kappa(unit, base, config.norm)
    scales = config.all_scales
    points = probe.share(list(range(len(scales))))  # under torchrun each rank walks its share of the points
    columns = _walk(ForwardEvaluator(model, x, y, loss_name, config.chunk_size), layer_names, unit, scales[points],
                    counter)
    per_point = ("loss", "function_change", *(("correct", "kl_divergence") if classifies(y) else ()))
    columns.update(probe.gather_rows(points, {k: columns[k] for k in per_point}, len(scales)))
    columns = probe.combined(columns, means=("loss", "kl_divergence", "loss_at_zero"), totals=("correct",),
                             norms=("function_change", "reference_norm"))  # each rank's part of the probe set
    unit_step_norm = float(P.norm(unit))
    loss = columns["loss"]
    function_change = ratio_or_nan(columns["function_change"], columns["reference_norm"])
    classification = classifies(y)
    nan = np.full(len(scales), np.nan)
    measured = Measurements(
        layer_names=list(layer_names),
        loss=loss,
        accuracy=columns["correct"] / probe.count if classification else None,
        relative_function_change=function_change,
        relative_gradient_change=nan.copy(),
        relative_gradient_change_per_layer=np.full((len(scales), len(layer_names)), np.nan),
        kl_divergence=columns["kl_divergence"] if classification else None,
        step_norm=np.abs(scales) * unit_step_norm,
        kappa=np.outer(np.abs(scales), [float(unit_kappa[n]) for n in layer_names]),
        lambda_max=float("nan"),
        loss_at_zero=float(columns["loss_at_zero"]),
        gradient_norm=float(P.norm(at_zero.gradient)) if at_zero is not None else float("nan"),
        unit_step_norm=unit_step_norm,
        slope=float(P.dot(at_zero.gradient, unit)) if at_zero is not None else float("nan"),
        curvature=float("nan"),
        nonfinite_points=int(np.sum(~np.isfinite(loss + function_change))),
    )
    undefined = nonfinite_weights or not all(bool(torch.isfinite(v).all()) for v in unit.values())
    predicted = predict_function_only(measured, scales, config.fit_points, nonfinite_at_w=undefined)
    return SliceSweep(**vars(measured), **vars(predicted))


def _walk(forward: ForwardEvaluator, names: list[str], unit: dict[str, Tensor], scales: np.ndarray,
          counter: Any) -> dict[str, Any]:
    """One forward pass at W and one at every W + t·u; the model is put back as it was, whatever happens."""
    flat = forward.pack(names)
    flat_base = P.flatten({k: forward.base[k] for k in names})
    flat_unit = P.flatten({k: unit[k] for k in names})
    try:
        at_w = forward.run(with_accuracy=False)
        reference = at_w.outputs
        changes = OutputChanges(reference, forward.y if forward.classification else None)
        losses = []
        for t in scales:
            if flat is not None:
                torch.add(flat_base, flat_unit, alpha=float(t), out=flat)
            else:  # TorchScript: its tensors cannot be re-homed, so one add per layer
                for k in names:
                    torch.add(forward.base[k], unit[k], alpha=float(t), out=forward.slots[k])
            at_t = forward.run(with_accuracy=False)
            losses.append(at_t.loss)
            changes.add(at_t.outputs)
            counter.advance("all layers")
    finally:
        forward.restore()
        if flat is not None:
            forward.unpack(names)

    columns = changes.finished()

    def host(key: str) -> np.ndarray:
        return columns[key].double().cpu().numpy() if key in columns else np.zeros(0)

    return {"loss": np.asarray(losses, dtype=np.float64), "function_change": host("function_change"),
            "correct": host("correct"), "kl_divergence": host("kl_divergence"), "loss_at_zero": at_w.loss,
            "reference_norm": float(torch.linalg.vector_norm(reference, dtype=torch.float64))}
