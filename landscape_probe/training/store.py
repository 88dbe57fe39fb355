"""One training run in memory, and how it is stored in the group ``/runs/<run name>`` of a train results file.

A train results file (docs/hdf5-format.md, "Files written by probe train";
written and read by :class:`~landscape_probe.training.result.TrainResult`)::

    /                     attrs: kind="train", provenance, config (JSON), incomplete
    /runs/<run name>      attrs: optimizer, lr, depth, seed, diverged, completed,
                                 best_of_grid, steps, model_args (JSON), checkpoint
        <the datasets declared by landscape_probe.training.records.RunRecords>

Run names are ``<optimizer>_lr<lr>_depth<d>_seed<s>``. This module imports no
torch, so plots and summaries stay light.

Example:
    >>> run_name("fromage", 0.01, 16, 0)
    'fromage_lr0.01_depth16_seed0'
"""

from __future__ import annotations

import json
import re
import math
from dataclasses import dataclass, field, replace
from statistics import fmean
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.layout import LOSS, quantities, read_quantities, write_quantities
from landscape_probe.training.records import RECORDED, RunRecords, as_arrays, run_records

if TYPE_CHECKING:
    import h5py
    from torch import nn

RUN_ATTRS = ("optimizer", "lr", "depth", "seed", "diverged", "completed", "best_of_grid", "steps")

def run_name(optimizer: str, lr: float, depth: int, seed: int) -> str:
    """The name of a run, e.g. ``fromage_lr0.01_depth16_seed0`` (``mypkg_optim_MyOpt_lr...`` for ``mypkg.optim:MyOpt``)."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', optimizer)}_lr{lr:g}_depth{depth}_seed{seed}"


@dataclass
class RunResult:
    """One training run: its place in the grid, its records, and (in memory) its final state.

    Attributes:
        records: name → values, one entry per step, epoch or diagnostic step
            (lists while training, numpy arrays when read back); each is also an
            attribute named like its dataset (``run.loss`` is ``run.records["loss"]``); per-layer
            records hold one row per entry, in ``layer_names`` order
            (``effective_learning_rate`` in ``normalised_layer_names`` order).
        steps: optimiser steps taken.
        diverged: the loss became NaN or infinite and the run stopped.
        completed: False when stopped early by a stop request (resumable).
        best_of_grid: this run's learning rate had the lowest mean final training
            loss among the rates tried for its optimiser and depth.
        state: model, optimizer and scheduler state dicts, ``step`` and the torch
            RNG states (:func:`~landscape_probe.seeding.rng_state`): enough to resume (None for runs read back from a file).
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

    def __getattr__(self, name: str) -> Any:
        """A recorded dataset by its name: ``run.sharpness`` is ``run.records["sharpness"]``."""
        if name in RECORDED and "records" in self.__dict__:
            return self.records[name]
        raise AttributeError(f"'RunResult' object has no attribute '{name}'")

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


def write_run(group: h5py.Group, run: RunResult, loss_units: str) -> None:
    """Write one run into its (new, empty) group: attributes, then every dataset :class:`RunRecords` declares.

    Args:
        group: ``/runs/<run name>``.
        run: the run; its records may be lists (while training) or arrays (read back).
        loss_units: the units of the loss-valued datasets (those declared with ``units=LOSS``).
    """
    import h5py

    for key in RUN_ATTRS:
        group.attrs[key] = getattr(run, key)
    group.attrs["model_args"] = json.dumps(run.model_args, sort_keys=True)
    group.attrs["checkpoint"] = f"{run.name}/checkpoint.pt"
    stored = run_records(run.records, run.layer_names, run.normalised_layer_names)
    names = {key: np.asarray(getattr(stored, key), dtype=h5py.string_dtype())
             for key in ("layer_names", "normalised_layer_names")}
    write_quantities(group, replace(stored, **names), "cross_entropy")
    for q in quantities(RunRecords):
        if q.units == LOSS:
            group[q.name].attrs["units"] = loss_units


def read_run(group: h5py.Group) -> RunResult:
    """The run stored in ``group`` by :func:`write_run`, its records as numpy arrays.

    Raises:
        ProbeError: a declared dataset is missing from the group.
    """
    from landscape_probe.errors import ProbeError
    from landscape_probe.hdf5 import plain_value

    values = read_quantities(RunRecords, group)
    missing = [q.name for q in quantities(RunRecords) if q.name not in values]
    if missing:
        raise ProbeError(f"Run '{group.name}' lacks the dataset(s) {', '.join(missing)}; the file is damaged.")
    return RunResult(
        model_args=json.loads(group.attrs["model_args"]),
        layer_names=[str(n) for n in values["layer_names"]],
        normalised_layer_names=[str(n) for n in values["normalised_layer_names"]],
        records=as_arrays({name: values[name] for name in RECORDED}, layers=len(values["layer_names"]),
                          normalised=len(values["normalised_layer_names"])),
        **{key: plain_value(group.attrs[key]) for key in RUN_ATTRS},
    )


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
    diverged run counts as loss inf and accuracy 0; a run with no finished
    epoch, e.g. a hand-written loop, as NaN);
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
            train_loss=fmean(_shown_loss(r) for r in members),
            train_accuracy=fmean(counted(r, r.final_train_accuracy) for r in members),
            test_accuracy=fmean(counted(r, r.final_test_accuracy) for r in members),
            diverged=sum(r.diverged for r in members), seeds=len(members),
        )
        for (optimizer, depth), members in sorted(groups.items())
    ]


def _shown_loss(run: RunResult) -> float:
    if not run.diverged and len(run.records["epoch_train_loss"]) == 0:
        return math.nan
    return run.final_train_loss
