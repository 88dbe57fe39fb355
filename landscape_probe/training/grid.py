"""A grid of training runs: optimiser × learning rate × depth × seed, with checkpoints and resume.

``train_many`` runs every cell of the grid with :func:`landscape_probe.training.loop.train_run`,
saves each run's final model as a self-describing checkpoint
``OUTPUT/<run name>/checkpoint.pt`` (so ``probe slice`` reads it with no other
option), and rewrites ``OUTPUT/results.h5`` after every run, so finished runs
survive a crash. A stop request (Ctrl-C) ends the current run between two
steps, saves ``OUTPUT/<run name>/resume.pt`` (model, optimiser, scheduler,
step, RNG state and records so far) and marks the file ``incomplete``;
``train_many(..., resume=True)`` reuses the finished runs from the file,
continues the interrupted one from ``resume.pt`` and runs the rest, giving the
same numbers as a run never interrupted.

As in the paper, ``lr_grid`` = n tries n learning rates a decade apart around
each optimiser's base rate and marks as ``best_of_grid`` the rate with the
lowest final training loss (mean over seeds) for each optimiser and depth.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from statistics import fmean

import torch

from landscape_probe.atomic import atomic_path
from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.data.datasets import Dataset, load_dataset, parse_data_spec
from landscape_probe.devices import resolve_device
from landscape_probe.errors import ProbeError
from landscape_probe.training.optim import OPTIMIZERS
from landscape_probe.hdf5 import check_writable, provenance
from landscape_probe.training.store import (
    RunResult,
    TrainResults,
    read_train_results,
    run_name,
    write_train_results,
)
from landscape_probe.training.loop import TrainConfig, train_run

RESULTS_NAME = "results.h5"
RunProgressFn = Callable[[str, int, int, float], None]
"""``on_progress(run_name, step, total_steps, loss)``."""


@dataclass
class TrainOutcome:
    """What ``train_many`` did: the results file, the runs, and whether some are left to do."""

    results_path: Path
    runs: list[RunResult]
    incomplete: bool


def lr_grid_values(base: float, points: int) -> list[float]:
    """``points`` learning rates a decade apart, centred on ``base``, largest first.

    ``lr_grid_values(0.01, 3) == [0.1, 0.01, 0.001]``; an even count centres
    between two decades (``points=2``: base·√10 and base/√10).
    """
    return [float(f"{base * 10 ** ((points - 1) / 2 - k):.6g}") for k in range(points)]


def planned_runs(config: TrainConfig) -> list[tuple[str, float, int, int]]:
    """Every (optimizer, lr, depth, seed) of the grid, in the order they are trained."""
    plan = []
    for depth in config.depths:
        for optimizer in config.optimizers:
            if optimizer not in OPTIMIZERS:
                raise ProbeError(f"Unknown optimizer '{optimizer}'; use one of: {', '.join(OPTIMIZERS)}.")
            base = config.learning_rates.get(optimizer, OPTIMIZERS[optimizer].default_lr)
            for lr in lr_grid_values(base, config.lr_grid):
                plan.extend((optimizer, lr, depth, seed) for seed in config.seeds)
    return plan


def mark_best_of_grid(runs: list[RunResult]) -> None:
    """Set ``best_of_grid`` on the runs of the rate with the lowest mean final training loss.

    Grouped by (optimizer, depth); the mean is over seeds, a diverged run counts as
    infinite loss, and ties (all diverged included) go to the first rate tried.
    """
    def group_key(run: RunResult) -> tuple[str, int]:
        return run.optimizer, run.depth

    for _, group in groupby(sorted(runs, key=group_key), key=group_key):
        by_lr: dict[float, list[RunResult]] = {}
        for run in group:
            by_lr.setdefault(run.lr, []).append(run)
        best = min(by_lr, key=lambda lr: (fmean(r.final_train_loss for r in by_lr[lr]), -lr))
        for lr, members in by_lr.items():
            for run in members:
                run.best_of_grid = lr == best


def load_training_data(config: TrainConfig) -> Dataset:
    """The data set named by ``config.dataset`` (a name, a spec like ``mnist1d:seed=1``, or a file)."""
    name, options = parse_data_spec(config.dataset)
    return load_dataset(name, **options)


def read_resumable(output_dir: Path | str) -> TrainResults:
    """The results file of an interrupted grid in ``output_dir``, to resume from.

    Raises:
        ProbeError: ``output_dir`` holds no results file.
    """
    results_path = Path(output_dir) / RESULTS_NAME
    if not results_path.is_file():
        raise ProbeError(f"Nothing to resume: '{results_path}' does not exist.")
    return read_train_results(results_path)


def train_many(
    config: TrainConfig,
    output_dir: Path | str,
    *,
    command_line: str = "",
    overwrite: bool = False,
    resume: bool = False,
    on_progress: RunProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    dataset: Dataset | None = None,
) -> TrainOutcome:
    """Train the whole grid; write checkpoints and ``results.h5`` under ``output_dir``.

    Args:
        config: the grid and the shared settings.
        output_dir: folder for ``results.h5`` and one checkpoint folder per run.
        command_line: recorded in the file's provenance.
        overwrite: replace an existing ``results.h5``.
        resume: continue the grid recorded in ``output_dir`` (finished runs are
            read back, the interrupted one continues from its ``resume.pt``).
        on_progress: called after every step of every run.
        should_stop: polled between steps; see :func:`stop_on_interrupt`.
        dataset: the data to train on; by default loaded from ``config.dataset``.

    Raises:
        ProbeError: results exist and neither ``overwrite`` nor ``resume`` is set, or
            ``resume`` is set and there is nothing to resume.
    """
    plan = planned_runs(config)
    output_dir = Path(output_dir)
    results_path = output_dir / RESULTS_NAME
    done: dict[str, RunResult] = {}
    if resume:
        done = {run.name: run for run in read_resumable(output_dir).runs}
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        check_writable(results_path, overwrite)
    if dataset is None:
        dataset = load_training_data(config)
    attrs = provenance(command_line=command_line, device=str(resolve_device(config.device)), seed=config.seeds[0])
    runs: list[RunResult] = []
    incomplete = False
    for optimizer, lr, depth, seed in plan:
        previous = done.get(run_name(optimizer, lr, depth, seed))
        if previous is not None and previous.completed:
            runs.append(previous)
            continue
        folder = output_dir / run_name(optimizer, lr, depth, seed)
        interrupted = _load_resume(folder / "resume.pt") if previous is not None else None
        progress = None if on_progress is None else _named_progress(on_progress, folder.name)
        run = train_run(config, dataset, optimizer, lr, depth, seed, progress, should_stop, interrupted)
        runs.append(run)
        _save(run, folder, config, dataset)
        incomplete = not run.completed
        if incomplete:
            break
        if len(runs) < len(plan):
            write_train_results(results_path, config.to_dict(), runs, attrs=attrs, incomplete=True, overwrite=True)
    mark_best_of_grid(runs)
    write_train_results(results_path, config.to_dict(), runs, attrs=attrs, incomplete=incomplete, overwrite=True)
    return TrainOutcome(results_path, runs, incomplete)


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a stop request (polled between steps); a second one interrupts at once.

    Yields:
        ``should_stop()``, True once Ctrl-C was pressed. Outside the main thread
        signals cannot be caught and it always returns False.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum: int, frame: object) -> None:
        requested.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _named_progress(on_progress: RunProgressFn, name: str) -> Callable[[int, int, float], None]:
    return lambda step, total, loss: on_progress(name, step, total, loss)


def _save(run: RunResult, folder: Path, config: TrainConfig, dataset: Dataset) -> None:
    """The run's model as a self-describing checkpoint, plus ``resume.pt`` if it was interrupted."""
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "checkpoint.pt", run.model, run.model_args, optimizer=run.state["optimizer"],
                    step=run.steps, config=config.to_dict(), data=dataset.spec)
    resume_path = folder / "resume.pt"
    if run.completed:
        resume_path.unlink(missing_ok=True)
        return
    with atomic_path(resume_path) as tmp:
        torch.save({"state": run.state, "records": run.records, "steps": run.steps}, tmp)


def _load_resume(path: Path) -> RunResult | None:
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    return RunResult("", 0.0, 0, 0, {}, [], [], saved["records"], steps=saved["steps"], state=saved["state"])
