"""The results of `probe train`: one run in memory, and the HDF5 layout that stores them all.

Layout (documented in docs/hdf5-format.md, "Files written by probe train")::

    /                     attrs: kind="train", provenance, config (JSON), incomplete
    /runs/<run name>      attrs: optimizer, lr, depth, seed, diverged, completed,
                                 best_of_grid, steps, model_args (JSON), checkpoint
        loss, learning_rate, gradient_norm            (steps,)
        weight_norm, relative_update                  (steps, layers)
        epoch_train_loss, epoch_train_accuracy,
        epoch_test_loss, epoch_test_accuracy          (epochs,)
        diagnostic_steps, sharpness,
        gradient_noise_scale, intrinsic_learning_rate (diagnostics,)
        spectral_shift                                (diagnostics, layers)
        effective_learning_rate                       (diagnostics, normalised layers)
        step, epoch                                   (indices of the two axes above)
        layer_names, normalised_layer_names           (strings)

Run names are ``<optimizer>_lr<lr>_depth<d>_seed<s>``. This module imports no
torch, so plots and summaries stay light.

Example:
    >>> run_name("fromage", 0.01, 16, 0)
    'fromage_lr0.01_depth16_seed0'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn

RECORDS: dict[str, tuple[str, str]] = {
    "loss": ("mini-batch training loss at step s, before the update", "nats"),
    "learning_rate": ("learning rate η_s used for the update of step s (after the schedule)", "1"),
    "gradient_norm": ("Euclidean norm of the mini-batch gradient over all parameters at step s", "nats"),
    "weight_norm": ("Frobenius norm ||W_l|| of each layer before the update of step s", "1"),
    "relative_update": ("||W_l(s+1) − W_l(s)||_F / ||W_l(s)||_F, each layer", "1"),
    "epoch_train_loss": ("mean loss on the whole training set after each epoch, eval mode", "nats"),
    "epoch_train_accuracy": ("accuracy on the whole training set after each epoch (NaN for regression)", "1"),
    "epoch_test_loss": ("mean loss on the whole test set after each epoch, eval mode", "nats"),
    "epoch_test_accuracy": ("accuracy on the whole test set after each epoch (NaN for regression)", "1"),
    "diagnostic_steps": ("steps at which the diagnostics below were taken (before that step's update)", ""),
    "sharpness": ("top Hessian eigenvalue of the loss on the fixed diagnostic batch (power iteration)", "nats"),
    "gradient_noise_scale": ("B_simple = tr(Σ)/||g||², unbiased per-example covariance Σ, diagnostic batch",
                             "examples"),
    "spectral_shift": ("max_i |σ_i(W+ΔW) − σ_i(W)| / rms σ(W) of that step's update, each layer", "1"),
    "effective_learning_rate": ("η_s / ||W_l||² for each layer followed by normalisation", "1"),
    "intrinsic_learning_rate": ("λ·η_s, weight decay λ times learning rate (Li, Lyu & Arora 2020)", "1"),
}
EPOCH_RECORDS = ("epoch_train_loss", "epoch_train_accuracy", "epoch_test_loss", "epoch_test_accuracy")
PER_LAYER = {"weight_norm": "layer_names", "relative_update": "layer_names", "spectral_shift": "layer_names",
             "effective_learning_rate": "normalised_layer_names"}


def run_name(optimizer: str, lr: float, depth: int, seed: int) -> str:
    """The name of a run, e.g. ``fromage_lr0.01_depth16_seed0``."""
    return f"{optimizer}_lr{lr:g}_depth{depth}_seed{seed}"


@dataclass
class RunResult:
    """One training run: its place in the grid, its records, and (in memory) its final state.

    Attributes:
        records: name → values, one entry per step, epoch or diagnostic step
            (lists while training, numpy arrays when read back); per-layer
            records hold one row per entry, in ``layer_names`` order
            (``effective_learning_rate`` in ``normalised_layer_names`` order).
        steps: optimiser steps taken.
        diverged: the loss became NaN or infinite and the run stopped.
        completed: False when stopped early by a stop request (resumable).
        best_of_grid: this run's learning rate had the lowest mean final training
            loss among the rates tried for its optimiser and depth.
        state: model, optimizer and scheduler state dicts, ``step`` and the torch
            RNG state: enough to resume (None for runs read back from a file).
        model: the trained network (None for runs read back from a file).
    """

    optimizer: str
    lr: float
    depth: int
    seed: int
    model_args: dict[str, Any]
    layer_names: list[str]
    normalised_layer_names: list[str]
    records: dict[str, Any]
    steps: int = 0
    diverged: bool = False
    completed: bool = True
    best_of_grid: bool = False
    state: dict[str, Any] | None = field(default=None, repr=False)
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The group name and checkpoint folder of this run."""
        return run_name(self.optimizer, self.lr, self.depth, self.seed)

    @property
    def final_train_loss(self) -> float:
        """Loss on the whole training set after the last epoch; inf if diverged or none yet."""
        losses = self.records["epoch_train_loss"]
        if self.diverged or len(losses) == 0 or not math.isfinite(losses[-1]):
            return math.inf
        return float(losses[-1])

    @property
    def final_test_accuracy(self) -> float:
        """Test accuracy after the last epoch; NaN if none."""
        accuracy = self.records["epoch_test_accuracy"]
        return float(accuracy[-1]) if len(accuracy) else math.nan

    @property
    def final_train_accuracy(self) -> float:
        """Training accuracy after the last epoch; NaN if none."""
        accuracy = self.records["epoch_train_accuracy"]
        return float(accuracy[-1]) if len(accuracy) else math.nan


def empty_records() -> dict[str, list]:
    """A list per record name, to append to while training."""
    return {name: [] for name in RECORDS}


def _array(run: RunResult, name: str) -> np.ndarray:
    values = run.records[name]
    if name in PER_LAYER:
        width = len(getattr(run, PER_LAYER[name]))
        return np.asarray(values, dtype=np.float64).reshape(len(values), width)
    return np.asarray(values, dtype=np.int64 if name == "diagnostic_steps" else np.float64)


def write_train_results(
    path: Path | str, config: dict[str, Any], runs: list[RunResult], *, attrs: dict[str, Any],
    incomplete: bool, overwrite: bool,
) -> None:
    """Write every run to a new results file (atomically), replacing it only with ``overwrite``.

    Args:
        config: the experiment configuration, stored as JSON in the root attribute ``config``.
        attrs: further root attributes, usually :func:`landscape_probe.hdf5.provenance`.
        incomplete: True while some planned runs have not finished.
    """
    import h5py

    from landscape_probe.hdf5 import atomic_h5, write_dataset

    root = {**attrs, "config": json.dumps(config, sort_keys=True), "incomplete": bool(incomplete)}
    with atomic_h5(path, kind="train", attrs=root, overwrite=overwrite) as h5:
        group_of_runs = h5.create_group("runs")
        for run in runs:
            group = group_of_runs.create_group(run.name)
            for key in ("optimizer", "lr", "depth", "seed", "diverged", "completed", "best_of_grid", "steps"):
                group.attrs[key] = getattr(run, key)
            group.attrs["model_args"] = json.dumps(run.model_args, sort_keys=True)
            group.attrs["checkpoint"] = f"{run.name}/checkpoint.pt"
            for name, (description, units) in RECORDS.items():
                write_dataset(group, name, _array(run, name), description=description, units=units)
            steps = np.arange(len(run.records["loss"]))
            write_dataset(group, "step", steps, description="step index s of the per-step records", units="")
            epochs = np.arange(1, len(run.records["epoch_train_loss"]) + 1)
            write_dataset(group, "epoch", epochs, description="epoch number of the per-epoch records", units="")
            for name in ("layer_names", "normalised_layer_names"):
                names = np.asarray(getattr(run, name), dtype=h5py.string_dtype())
                write_dataset(group, name, names, description=f"{name.replace('_', ' ')}, in column order", units="")


@dataclass
class TrainResults:
    """A train results file read back: root attributes, the config, and the runs in file order."""

    attrs: dict[str, Any]
    config: dict[str, Any]
    incomplete: bool
    runs: list[RunResult]


def read_train_results(path: Path | str) -> TrainResults:
    """Read a file written by :func:`write_train_results`.

    Raises:
        ProbeError: if the file is missing, not ours, or not a train results file.
    """
    from landscape_probe.errors import ProbeError
    from landscape_probe.hdf5 import open_results, plain_value, read_attrs, read_group

    with open_results(path) as h5:
        if h5.attrs["kind"] != "train":
            raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not train results.")
        attrs = read_attrs(h5)
        runs = []
        for group in h5["runs"].values():
            arrays = read_group(group)
            meta = {key: plain_value(group.attrs[key]) for key in ("optimizer", "lr", "depth", "seed", "diverged",
                                                                "completed", "best_of_grid", "steps")}
            runs.append(RunResult(
                model_args=json.loads(group.attrs["model_args"]),
                layer_names=[str(n) for n in arrays.pop("layer_names")],
                normalised_layer_names=[str(n) for n in arrays.pop("normalised_layer_names")],
                records={name: arrays[name] for name in RECORDS}, **meta,
            ))
    return TrainResults(attrs, json.loads(attrs["config"]), bool(attrs["incomplete"]), runs)


@dataclass(frozen=True)
class SummaryRow:
    """One optimiser at one depth, at its best learning rate, averaged over seeds."""

    optimizer: str
    depth: int
    lr: float
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    diverged: int
    seeds: int


def summary_rows(runs: list[RunResult]) -> list[SummaryRow]:
    """The runs marked ``best_of_grid``, grouped by (optimizer, depth), sorted by optimizer then depth.

    Loss and accuracies are means over seeds of the last epoch's values (a
    diverged run counts as loss inf and accuracy 0);
    ``diverged`` counts the seeds that diverged.
    """
    groups: dict[tuple[str, int], list[RunResult]] = {}
    for run in runs:
        if run.best_of_grid:
            groups.setdefault((run.optimizer, run.depth), []).append(run)

    def counted(run: RunResult, accuracy: float) -> float:
        return 0.0 if run.diverged or math.isnan(accuracy) else accuracy

    return [
        SummaryRow(
            optimizer, depth, members[0].lr,
            train_loss=fmean(r.final_train_loss for r in members),
            train_accuracy=fmean(counted(r, r.final_train_accuracy) for r in members),
            test_accuracy=fmean(counted(r, r.final_test_accuracy) for r in members),
            diverged=sum(r.diverged for r in members), seeds=len(members),
        )
        for (optimizer, depth), members in sorted(groups.items())
    ]
