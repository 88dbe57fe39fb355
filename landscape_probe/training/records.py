"""What one training run records, declared once: the datasets of a run's group in a train results file.

:class:`RunRecords` lists every dataset of ``/runs/<run name>/`` (name, meaning,
units, shape) as :func:`~landscape_probe.layout.quantity` fields. The writer and
reader (:mod:`landscape_probe.training.store`), the summary, the plots, the
pandas frames and the table in ``docs/hdf5-format.md`` all derive from it.
Shapes use S steps taken, E epochs finished, K diagnostic steps, L layers
(parameters with ndim ≥ 2) and N layers followed by normalisation.

While training, records are lists that grow (:func:`empty_records`);
:func:`as_arrays` turns them into the stored numpy arrays.

Example:
    >>> RECORDED[:3]
    ('loss', 'learning_rate', 'gradient_norm')
    >>> arrays = as_arrays({**empty_records(), "weight_norm": [[3.0, 4.0]]}, layers=2, normalised=0)
    >>> arrays["weight_norm"].shape, arrays["effective_learning_rate"].shape
    ((1, 2), (0, 0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from landscape_probe.layout import LOSS, quantities, quantity


@dataclass(kw_only=True)
class RunRecords:
    """The datasets of one run, as stored (numpy arrays; names as lists of str)."""

    step: np.ndarray = quantity("step index s of the per-step records", units="", shape="(S,)")
    loss: np.ndarray = quantity("mini-batch training loss at step s, before the update", units=LOSS, shape="(S,)")
    learning_rate: np.ndarray = quantity(
        "learning rate η_s used for the update of step s (after the schedule)", units="1", shape="(S,)")
    gradient_norm: np.ndarray = quantity(
        "‖∇loss‖, Euclidean norm of the mini-batch gradient over all parameters at step s",
        units=LOSS, shape="(S,)")
    weight_norm: np.ndarray = quantity(
        "Frobenius norm ‖W_l‖_F of each layer before the update of step s", units="1", shape="(S, L)")
    relative_update: np.ndarray = quantity(
        "‖W_l(s+1) − W_l(s)‖_F / ‖W_l(s)‖_F of each layer", units="1", shape="(S, L)")
    epoch: np.ndarray = quantity("epoch number of the per-epoch records", units="", shape="(E,)")
    epoch_train_loss: np.ndarray = quantity(
        "mean loss on the whole training set after each epoch, eval mode", units=LOSS, shape="(E,)")
    epoch_train_accuracy: np.ndarray = quantity(
        "accuracy on the whole training set after each epoch (NaN for regression)", units="1", shape="(E,)")
    epoch_test_loss: np.ndarray = quantity(
        "mean loss on the whole test set after each epoch, eval mode", units=LOSS, shape="(E,)")
    epoch_test_accuracy: np.ndarray = quantity(
        "accuracy on the whole test set after each epoch (NaN for regression)", units="1", shape="(E,)")
    diagnostic_steps: np.ndarray = quantity(
        "steps s (multiples of diagnostics_every) at which the diagnostics below were taken, "
        "at W_s before that step's update", units="", shape="(K,)")
    sharpness: np.ndarray = quantity(
        "top Hessian eigenvalue (largest magnitude, sign kept) of the loss on the fixed diagnostic batch "
        "(the first diagnostic_batch_size training examples), Lanczos", units=LOSS,
        shape="(K,)")
    gradient_noise_scale: np.ndarray = quantity(
        "B_simple = tr(Σ̂)/‖ḡ‖² from per-example gradients on the diagnostic batch; Σ̂ is unbiased, "
        "‖ḡ‖² overestimates ‖E g‖² by tr(Σ)/B", units="examples",
        shape="(K,)")
    spectral_shift: np.ndarray = quantity(
        "max_i |σ_i(W+ΔW) − σ_i(W)| / rms_i σ_i(W) of that step's update, each layer "
        "(≤ ‖ΔW‖₂ / rms σ by Mirsky)", units="1", shape="(K, L)")
    relative_update_spectral: np.ndarray = quantity(
        "‖W_l(s+1) − W_l(s)‖₂ / ‖W_l(s)‖₂ of that step's update, each layer: relative_update in the spectral "
        "norm (largest singular value; a conv kernel as an (out, rest) matrix), the norm Muon's update is "
        "shaped in (NaN in files written before it was recorded)", units="1", shape="(K, L)", optional=True)
    step_over_breakdown: np.ndarray = quantity(
        "the optimiser's own next step over its breakdown scale on the diagnostic batch: 1/t* where "
        "||g(W + t·ΔW) − g(W)|| / ||g(W)|| first reaches 1 for t = 0.25, 0.5, 1, ..., 1024 (log-log "
        "interpolated; 4 if already at 0.25; NaN if never, for an optimiser that cannot be deep-copied, "
        "for SOAP's first step (which moves nothing) and in files written before it was recorded)", units="1",
        shape="(K,)", optional=True)
    effective_learning_rate: np.ndarray = quantity(
        "η_s / ‖W_l‖² for each layer followed by normalisation", units="1", shape="(K, N)")
    intrinsic_learning_rate: np.ndarray = quantity(
        "λ·η_s, weight decay λ times learning rate (Li, Lyu & Arora 2020)", units="1", shape="(K,)")
    layer_names: list[str] = quantity(
        "layer names (parameters with ndim ≥ 2), the column order of the per-layer records", units="", shape="(L,)")
    normalised_layer_names: list[str] = quantity(
        "normalised layer names, the column order of effective_learning_rate (N may be 0)", units="", shape="(N,)")


INDICES = ("step", "epoch", "layer_names", "normalised_layer_names")
"""Stored datasets that label the axes of the others rather than being recorded."""
RECORDED: tuple[str, ...] = tuple(q.name for q in quantities(RunRecords) if q.name not in INDICES)
"""The records a run appends to while training, in declaration order."""
EPOCH_RECORDS = ("epoch_train_loss", "epoch_train_accuracy", "epoch_test_loss", "epoch_test_accuracy")
PER_LAYER = {"weight_norm": "layer_names", "relative_update": "layer_names", "spectral_shift": "layer_names",
             "relative_update_spectral": "layer_names", "effective_learning_rate": "normalised_layer_names"}
"""Records with one column per layer, and the names dataset that orders the columns."""
OPTIONAL = frozenset(q.name for q in quantities(RunRecords) if q.optional)
"""Records that files and loops from earlier versions lack."""
PER_STEP = tuple(q.name for q in quantities(RunRecords) if q.shape.startswith("(S") and q.name != "step")
PER_DIAGNOSTIC = tuple(q.name for q in quantities(RunRecords) if q.shape.startswith("(K"))
UNITS = {q.name: q.units for q in quantities(RunRecords)}


def empty_records() -> dict[str, list]:
    """A list per recorded name, to append to while training."""
    return {name: [] for name in RECORDED}


def as_arrays(records: dict[str, Any], *, layers: int, normalised: int) -> dict[str, np.ndarray]:
    """The recorded lists as numpy arrays of the stored shapes and types.

    Per-layer records become ``(entries, columns)`` arrays even when empty;
    ``diagnostic_steps`` is int64, everything else float64. An optional record
    that is missing or None (a file or loop from before it existed) is NaN at every diagnostic step.
    """
    columns = {"layer_names": layers, "normalised_layer_names": normalised}
    arrays = {}
    for name in RECORDED:
        values = records.get(name) if name in OPTIONAL else records[name]
        if values is None:
            row = [np.nan] * columns[PER_LAYER[name]] if name in PER_LAYER else np.nan
            values = [row] * len(records["diagnostic_steps"])
        if name in PER_LAYER:
            arrays[name] = np.asarray(values, dtype=np.float64).reshape(len(values), columns[PER_LAYER[name]])
        else:
            arrays[name] = np.asarray(values, dtype=np.int64 if name == "diagnostic_steps" else np.float64)
    return arrays


def run_records(records: dict[str, Any], layer_names: list[str], normalised_layer_names: list[str]) -> RunRecords:
    """The stored form of one run's records, with the step and epoch indices added."""
    arrays = as_arrays(records, layers=len(layer_names), normalised=len(normalised_layer_names))
    return RunRecords(
        step=np.arange(len(arrays["loss"]), dtype=np.int64),
        epoch=np.arange(1, len(arrays["epoch_train_loss"]) + 1, dtype=np.int64),
        layer_names=list(layer_names), normalised_layer_names=list(normalised_layer_names), **arrays,
    )
