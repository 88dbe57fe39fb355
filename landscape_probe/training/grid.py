"""A grid of training runs: optimiser × learning rate × depth × seed, with checkpoints and resume.

``train_grid`` runs every cell of the grid with :func:`landscape_probe.training.loop.train_run`.
Given an output folder, it saves each run's final model as a self-describing
checkpoint ``OUTPUT/<run name>/checkpoint.pt`` (so ``probe slice`` reads it with
no other option; a user's own model is recorded by its import path) and rewrites ``OUTPUT/results.h5`` after every run, so
finished runs survive a crash. A stop request (Ctrl-C) ends the current run
between two steps, saves ``OUTPUT/<run name>/resume.pt`` (model, optimiser,
scheduler, step, RNG state and records so far, on the CPU, so that a run cut short on a GPU
resumes on any machine) and marks the file
``incomplete``; ``train_grid(..., resume=True)`` reuses the finished runs from
the file, continues the interrupted one from ``resume.pt`` and runs the rest,
giving the same numbers as a run never interrupted.

As in the paper, ``lr_grid`` = n tries n learning rates a decade apart around
each optimiser's base rate and marks as ``best_of_grid`` the rate with the
lowest final training loss (mean over seeds) for each optimiser and depth.

Example:
    >>> lr_grid_values(0.01, 3)
    [0.1, 0.01, 0.001]
    >>> planned_runs(TrainConfig(optimizers=("adam", "fromage"), depths=(2, 16)))[:2]
    [('adam', 0.001, 2, 0), ('fromage', 0.01, 2, 0)]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from functools import partial
from itertools import groupby
from pathlib import Path
from statistics import fmean
from typing import Any

import torch

from landscape_probe import distributed
from landscape_probe.atomic import atomic_path, is_disk_full
from landscape_probe.checkpoints.load import save_checkpoint
from landscape_probe.data.datasets import Dataset, load_dataset, parse_data_spec
from landscape_probe.devices import portable
from landscape_probe.errors import ProbeError
from landscape_probe.folders import check_folder
from landscape_probe.hdf5 import check_writable
from landscape_probe.layout import loss_units
from landscape_probe.losses import loss_for
from landscape_probe.training.data_parallel import check_data_parallel, uses_data_parallel
from landscape_probe.training.loop import TrainConfig, run_model, train_run
from landscape_probe.optim import default_learning_rate
from landscape_probe.training.result import TrainResult
from landscape_probe.training.run_queue import RunQueue
from landscape_probe.training.run_transfer import packed, unpacked
from landscape_probe.training.store import RunResult, run_name
from landscape_probe.training.tensorboard import RunLog
from landscape_probe.training.trajectory import FOLDER as TRAJECTORY
from landscape_probe.training.trajectory import snapshot_writer
from landscape_probe.training.user_model import ModelFactory, read_initial_weights

RESULTS_NAME = "results.h5"
RunProgressFn = Callable[[str, int, int, float], None]
"""``on_progress(run_name, step, total_steps, loss)``."""


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
            base = (config.auto_learning_rates.get(optimizer, {}).get(str(depth))
                    or config.learning_rates.get(optimizer) or default_learning_rate(optimizer))
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


def read_resumable(output_dir: Path | str) -> TrainResult:
    """The results file of an interrupted grid in ``output_dir``, to resume from.

    Raises:
        ProbeError: ``output_dir`` holds no results file.
    """
    results_path = Path(output_dir) / RESULTS_NAME
    if not results_path.is_file():
        raise ProbeError(f"Nothing to resume: '{results_path}' does not exist.")
    return TrainResult.load(results_path)


def train_grid(
    config: TrainConfig,
    dataset: Dataset,
    output_dir: Path | str | None = None,
    *,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    on_progress: RunProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    factory: ModelFactory | None = None,
    trust_checkpoint: bool = False,
    tensorboard: Path | str | None = None,
    shard: str | None = None,
) -> TrainResult:
    """Train the whole grid; with ``output_dir``, write checkpoints and ``results.h5`` there.

    Args:
        config: the grid and the shared settings.
        dataset: the data to train on.
        output_dir: folder for ``results.h5`` and one checkpoint folder per run; None: write nothing.
        attrs: the results file's root attributes (provenance).
        overwrite: replace an existing ``results.h5``.
        resume: continue the grid recorded in ``output_dir`` (finished runs are
            read back, the interrupted one continues from its ``resume.pt``).
        on_progress: called after every step of every run.
        should_stop: polled between steps; see :func:`~.run_queue.stop_on_interrupt`.
        factory: a user's model to train instead of the zoo model of ``config``.
        trust_checkpoint: let ``config.init_from`` be a pickle that needs code (a whole ``nn.Module``).
        tensorboard: a folder for each run's TensorBoard event files (:mod:`.tensorboard`), or None.
        shard: under ``torchrun``, ``work`` hands the runs to the ranks as they free up (:mod:`.run_queue`),
            ``data`` trains every run on all of them, each on its part of every batch
            (:mod:`.data_parallel`); None: ``data`` for a single run, else ``work``.

    Returns:
        The runs, marked ``incomplete`` if a stop request cut the grid short.

    Raises:
        ProbeError: results exist and neither ``overwrite`` nor ``resume`` is set, or
            ``resume`` is set and there is nothing to resume.
    """
    plan = planned_runs(config)
    data_parallel = uses_data_parallel(shard, len(plan))
    if data_parallel:
        check_data_parallel(config, run_model(config, dataset, config.depths[0], config.seeds[0], factory)[1])
    folder = Path(output_dir) if output_dir is not None else None
    results_path = folder / RESULTS_NAME if folder is not None else None
    main = distributed.is_main()  # under torchrun rank 0 alone reads and writes the output folder
    done: dict[str, RunResult] = {}
    if resume:
        if folder is None:
            raise ProbeError("Resuming needs the output folder of the interrupted grid.")
        done = distributed.from_main({run.name: run for run in read_resumable(folder).runs} if main else None)
    elif folder is not None and main:
        check_folder(folder, "The output folder")
        if folder.is_dir():
            check_writable(results_path, overwrite)
    result = TrainResult([], config.to_dict(), loss_units(loss_for(dataset, config.loss)),
                         attrs=dict(attrs or {}))
    initial_weights = read_initial_weights(config.init_from, trust_checkpoint) if config.init_from else None
    steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
    order = {run_name(*cell): index for index, cell in enumerate(plan)}
    runs = sorted((run for name, run in done.items() if name in order and run.completed),
                  key=lambda each: order[each.name])
    todo = [cell for cell in plan if run_name(*cell) not in {run.name for run in runs}]
    resumed = distributed.from_main({run_name(*cell): _load_resume(folder / run_name(*cell) / "resume.pt")
                                     for cell in todo if run_name(*cell) in done} if main else None)
    saved_runs = 0

    def record(run: RunResult) -> None:
        nonlocal runs, saved_runs
        runs = sorted([*runs, run], key=lambda each: order[each.name])
        # until the last planned run is done, the file says so: a grid killed between runs reads as incomplete
        result.incomplete = not run.completed or len(runs) < len(plan)
        if folder is not None and results_path is not None and main:
            mark_best_of_grid(runs)
            _save_with_results(run, folder / run.name, config, dataset, _replace(result, runs), results_path)
            saved_runs = len(runs)

    shared = distributed.launched() and not data_parallel  # under torchrun each free rank claims the next run
    rebuild = partial(unpacked, output_key=config.output_key, device=config.device, factory=factory)
    queue = RunQueue(len(todo), shared=shared, record=record, rebuild=rebuild)
    stop, trained = queue.should_stop(should_stop), []
    for index in queue:
        optimizer, lr, depth, seed = todo[index]
        name = run_name(optimizer, lr, depth, seed)
        writes = main or not data_parallel  # a run trained by every rank is logged and saved by rank 0
        log = None if tensorboard is None or not writes else RunLog(Path(tensorboard) / name, steps_per_epoch)
        progress = _run_progress(on_progress, name, log)
        snapshot = (snapshot_writer(folder / name / TRAJECTORY, config.save_every)
                    if folder is not None and config.save_every and writes else None)
        trained.append(train_run(config, dataset, optimizer, lr, depth, seed, progress, stop, resumed.get(name),
                                 factory, initial_weights, snapshot, data_parallel))
        if log is not None:
            log.close(trained[-1])
        queue.finished(index, trained[-1])
        if not trained[-1].completed:
            queue.stop()
    queue.finish()
    if shared:  # every rank gets every run, its network rebuilt from the state dict sent
        gathered = distributed.gather([packed(run) for run in trained])
        if not main:
            others = [rebuild(run) for rank, part in enumerate(gathered) if rank != distributed.rank() for run in part]
            runs = sorted([*runs, *trained, *others], key=lambda each: order[each.name])
    mark_best_of_grid(runs)
    result = _replace(result, runs)
    result.incomplete = len(runs) < len(plan) or not all(run.completed for run in runs)
    if results_path is not None and main:
        if saved_runs == len(runs):
            result.path = results_path  # written with the last run, best-of-grid marks included
        else:
            result.save(results_path, overwrite=True)
    return result


def _replace(result: TrainResult, runs: list[RunResult]) -> TrainResult:
    return TrainResult(list(runs), result.config, result.loss_units, result.incomplete, result.attrs)


def _run_progress(on_progress: RunProgressFn | None, name: str,
                  log: RunLog | None) -> Callable[[int, int, RunResult], None] | None:
    """The run's ``progress``: the grid's ``on_progress`` with the run's name and loss, and its TensorBoard log."""
    if on_progress is None and log is None:
        return None

    def progress(step: int, total: int, run: RunResult) -> None:
        if on_progress is not None:
            losses = run.records["loss"]  # copied from the device in blocks: the latest block's last loss
            on_progress(name, step, total, losses[-1] if losses else math.nan)
        if log is not None:
            log.update(run)

    return progress


def _save_with_results(
    run: RunResult, folder: Path, config: TrainConfig, dataset: Dataset, result: TrainResult, results_path: Path
) -> None:
    """Save the run's checkpoint (and ``resume.pt`` if it was interrupted) and the results file, all or nothing.

    The run's files are written to temporary names first, then the results
    file recording the run, and only then are the run's files renamed into
    place. If anything fails (a full disk), the temporaries are removed, the folders
    made here for them (the run's, the output folder) are removed if empty, and the folder is as it
    was before the run: ``results.h5`` and the checkpoints of the runs it
    records, so a checkpoint is never there without the results that describe
    it (and ``--resume`` can pick the grid up).

    The checkpoint is self-describing: a zoo model's ``model_args``, or a user's
    model's import path and keywords (:func:`~landscape_probe.training.user_model.factory_args`).

    Raises:
        ProbeError: when a file cannot be written, in one sentence saying what was kept.
    """
    made = [f for f in (folder, *folder.parents) if not f.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    path, resume_path = folder / "checkpoint.pt", folder / "resume.pt"
    state = portable(run.state)  # copied from the device once, for both files
    extras = {"optimizer": state["optimizer"], "step": run.steps, "config": config.to_dict(), "data": dataset.spec,
              "run": {"optimizer": run.optimizer, "lr": run.lr, "depth": run.depth, "seed": run.seed}}
    try:
        with contextlib.ExitStack() as staged:
            checkpoint_tmp = staged.enter_context(atomic_path(path))
            save_checkpoint(checkpoint_tmp, run.model, run.model_args, **extras)
            if not run.completed:
                torch.save({"state": state, "records": run.records, "steps": run.steps},
                           staged.enter_context(atomic_path(resume_path)))
            result.save(results_path, overwrite=True)
    except BaseException as err:
        for made_here in made:
            with contextlib.suppress(OSError):
                made_here.rmdir()  # only if empty
        if isinstance(err, Exception) and is_disk_full(err):
            raise ProbeError(
                f"Cannot save run {run.name}: the disk is full, so neither its checkpoint nor '{results_path}' "
                "was written, and the output folder is as it was before the run."
            ) from None
        raise
    if run.completed:
        resume_path.unlink(missing_ok=True)


def _load_resume(path: Path) -> RunResult | None:
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)  # train_run moves it to the run's device
    return RunResult("", 0.0, 0, 0, {}, [], [], saved["records"], steps=saved["steps"], state=saved["state"])
