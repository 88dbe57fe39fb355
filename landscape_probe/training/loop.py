"""One training loop for every optimiser, and what it records.

``train_run`` trains one zoo model with one optimiser, learning rate, depth and
seed. Everything that is not the optimiser is shared: at a given seed and depth
every optimiser starts from the same weights and sees the same batches in the
same order, so differences between runs are the optimiser's doing.

What is recorded, and when, is :mod:`landscape_probe.training.recorder`'s
(per step: loss, learning rate, gradient norm, weight norms, relative updates;
every ``diagnostics_every`` steps, on a fixed batch: sharpness, gradient noise
scale, spectral shift, effective and intrinsic learning rates), plus per epoch,
on the whole train and test sets in ``eval()`` mode: ``epoch_train_loss``,
``epoch_train_accuracy``, ``epoch_test_loss``, ``epoch_test_accuracy``.

A schedule-free optimiser (``schedulefree_adamw``) has ``train()`` and ``eval()``:
the loop calls ``train()`` before each step and ``eval()`` before the diagnostics,
the epoch evaluation and the end of the run, so that what is evaluated and saved
is its average x (:func:`~landscape_probe.optim.stepping.optimizer_mode`); the per-step records see the point y
its gradients are taken at.

A run whose batch loss becomes NaN or infinite stops and is marked diverged; its records end before
that step. On a GPU the loss is read in blocks (:func:`loss_read_at_once`), so the run trains up to
``FLUSH_EVERY`` steps further before it stops: the records are the same, the final weights are those it
stopped with.
Example:
    >>> from landscape_probe.data.datasets import load_dataset
    >>> config = TrainConfig(epochs=1, width=16, diagnostics_every=0)
    >>> run = train_run(config, load_dataset("digits"), "adam", 1e-3, depth=2, seed=0)
    >>> run.completed, run.diverged, len(run.records["loss"]) == run.steps
    (True, False, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe import distributed
from landscape_probe.data.datasets import Dataset
from landscape_probe.devices import resolve_device
from landscape_probe.errors import ProbeError
from landscape_probe.losses import LossFn, loss_for, loss_function
from landscape_probe.models.modes import evaluating
from landscape_probe.models.outputs import attach_selection, selecting_output
from landscape_probe.models.zoo import build_model, complete_model_args, parse_zoo_spec
from landscape_probe.training.data_parallel import batch_gradient
from landscape_probe.training.config import SCHEDULES, TrainConfig  # noqa: F401 - TrainConfig re-exported
from landscape_probe.optim import build_optimizer, keywords_for
from landscape_probe.optim.stepping import optimizer_mode
from landscape_probe.seeding import restore_rng, rng_state, seeded
from landscape_probe.training.records import EPOCH_RECORDS
from landscape_probe.training.recorder import Recorder
from landscape_probe.training.store import RunResult
from landscape_probe.training.user_model import ModelFactory, factory_args, start_from

ProgressFn = Callable[[int, int, RunResult], None]
"""``progress(step, total_steps, run)``, called after every step; ``run.records`` holds what is recorded so far."""


def schedule_factor(schedule: str, step: int, total_steps: int) -> float:
    """The multiplier of the base learning rate at ``step`` (η_s = η · factor).

    ``constant``: 1. ``step``: 0.1 from half-way, 0.01 from three quarters.
    ``exponential``: 0.01^(s/T), so 1 % of η at the end. ``inverse``:
    1 / (1 + 9 s/T), inverse-time decay to η/10. ``cosine``: ½(1 + cos(π s/T)),
    annealed to 0. Here T is the total number of steps.
    """
    fraction = step / max(total_steps, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 1.0 if fraction < 0.5 else 0.1 if fraction < 0.75 else 0.01
    if schedule == "exponential":
        return 0.01**fraction
    if schedule == "inverse":
        return 1.0 / (1.0 + 9.0 * fraction)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
    raise ProbeError(f"Unknown schedule '{schedule}'; use one of {', '.join(SCHEDULES)}.")


def model_args_for(config: TrainConfig, dataset: Dataset, depth: int) -> dict[str, Any]:
    """The zoo ``model_args`` of one run: the config's architecture sized for the data set.

    ``width`` is the MLP's hidden width, the CNN's channel count and the
    transformer's ``d_model``; the transformer has its own (layer) normalisation.
    ``config.model`` may be a zoo spec (``mlp:width=32,init=xavier``) whose options
    override the config's; its ``depth`` is the grid's (``lp.train`` puts it there).
    """
    spec = parse_zoo_spec(config.model)
    name = spec.pop("name")
    spec.pop("depth", None)
    args: dict[str, Any] = {"name": name, "depth": depth, "activation": config.activation, "init": config.init}
    if name == "cnn":
        args.update(channels=config.width, norm=config.norm)
    elif name == "transformer":
        args.update(d_model=config.width)
    else:
        args.update(width=config.width, norm=config.norm)
    return complete_model_args({**args, **spec}, dataset)


def init_model(model_args: dict[str, Any], seed: int, factory: ModelFactory | None = None) -> nn.Module:
    """Build the model with weights drawn from ``seed`` alone (the global RNGs, CUDA's too, are left as they were).

    A zoo model is built from ``model_args`` on the CPU; with ``factory``, the factory's model is, and since
    a factory may build it on a GPU, the CUDA generators are seeded for it as well (:func:`~landscape_probe.seeding.seeded`).

    Raises:
        ProbeError: the factory does not return an ``nn.Module``.
    """
    with seeded(seed, cuda=factory is not None):
        if factory is None:
            return build_model(model_args)
        model = factory()
    if not isinstance(model, nn.Module):
        raise ProbeError(f"The model factory returned a {type(model).__name__}, not a torch nn.Module.")
    return model


def run_model(config: TrainConfig, dataset: Dataset, depth: int, seed: int,
              factory: ModelFactory | None) -> tuple[dict[str, Any], nn.Module]:
    """A run's model arguments (the zoo's, or the factory's import path and keywords) and its model at ``seed``."""
    model_args = model_args_for(config, dataset, depth) if factory is None else factory_args(factory)
    return model_args, init_model(model_args, seed, factory)


def chosen_output(config: TrainConfig, dataset: Dataset, factory: ModelFactory | None, key: str | None) -> str:
    """The output every run trains on: ``key``, else ``logits``, else the first tensor (``""``: one tensor).

    Found on two training examples of the first depth's model, so that a bad key is refused before any run;
    the examples go where the model is (a factory may build it on a GPU).

    Raises:
        ProbeError: for a key the model's outputs lack, or outputs holding no tensor.
    """
    _, model = run_model(config, dataset, config.depths[0], config.seeds[0], factory)
    where = next(model.parameters(), next(model.buffers(), dataset.x_train)).device
    with selecting_output(model, key) as choice, evaluating(model), torch.no_grad():
        model(dataset.x_train[:2].to(where))
    return choice.text


def loss_read_at_once(device: torch.device) -> bool:
    """Whether each step's loss is checked for NaN and infinity as it comes, before the step's update.

    On the CPU, where reading it costs nothing. On a GPU reading it would make every step wait for the
    device, so the loop learns of a loss that is not finite when the recorder next copies its block of
    per-step numbers (:meth:`~landscape_probe.training.recorder.Recorder.flush`: at most ``FLUSH_EVERY``
    steps later, and before diagnostics and each epoch's evaluation), and cuts the records back to that step.
    """
    return device.type == "cpu"


def batch_order(num_examples: int, seed: int, epoch: int) -> Tensor:
    """The permutation of the training set used in ``epoch``: a function of (seed, epoch) only."""
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    return torch.randperm(num_examples, generator=generator)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, batch_size: int = 1024,
             split: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy over a whole set, in ``eval()`` mode, in batches.

    Accuracy is NaN for regression targets (floating-point ``y``). With ``split`` (``--shard data``),
    each ``torchrun`` rank evaluates every N-th batch and the batches' totals are gathered and added
    in order, as one process adds them.
    """
    starts = list(range(0, len(x), batch_size))
    mine = distributed.share(list(range(len(starts)))) if split else list(range(len(starts)))
    losses, correct = [], []
    with evaluating(model):
        for index in mine:
            outputs = model(x[starts[index] : starts[index] + batch_size])
            targets = y[starts[index] : starts[index] + batch_size]
            losses.append(float(loss_fn(outputs, targets)) * len(targets))
            correct.append(0 if targets.is_floating_point() else int((outputs.argmax(dim=1) == targets).sum()))
    if split:
        totals = distributed.gather_rows(mine, {"loss": losses, "correct": correct}, len(starts))
        losses, correct = totals.get("loss", []).tolist(), totals.get("correct", []).tolist()
    accuracy = math.nan if y.is_floating_point() else sum(correct) / len(x)
    return sum(losses, 0.0) / len(x), accuracy


def train_run(
    config: TrainConfig,
    dataset: Dataset,
    optimizer_name: str,
    lr: float,
    depth: int,
    seed: int,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: RunResult | None = None,
    factory: ModelFactory | None = None,
    initial_weights: dict[str, Tensor] | None = None,
    snapshot: Callable[[int, nn.Module, bool], None] | None = None,
    data_parallel: bool = False,
) -> RunResult:
    """Train one model with one optimiser for ``config.epochs`` epochs; see the module docstring.

    Args:
        config: shared settings (architecture, data order, schedule, diagnostics).
        dataset: the train/test split.
        optimizer_name, lr, depth, seed: this run's place in the grid.
        progress: called after every step.
        should_stop: polled before every step; when it returns True the run stops
            between two steps and comes back with ``completed=False`` and a
            resumable ``state``.
        resume: an interrupted run (with ``state``) to continue; the result equals
            that of a run never interrupted.
        factory: a user's model to train instead of the zoo model of ``config``.
        initial_weights: the weights of ``config.init_from``, to start from instead of fresh ones.
        snapshot: called before every step and after the last (``probe train --save-every``).
        data_parallel: under ``torchrun``, train on this rank's part of every batch, the gradients summed
            over the ranks, and evaluate each epoch's sets split among them (:mod:`.data_parallel`).
    """
    device = resolve_device(config.device)
    model_args, model = run_model(config, dataset, depth, seed, factory)
    if initial_weights is not None:
        start_from(model, initial_weights, config.init_from or "?")
    attach_selection(model, config.output_key or None)  # the loss, diagnostics and evaluation see one tensor
    model = model.to(device)
    keywords = keywords_for(config.optimizer_kwargs, optimizer_name, config.optimizers)
    optimizer = build_optimizer(optimizer_name, model, lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                optimizer_kwargs=keywords)
    steps_per_epoch = math.ceil(len(dataset.x_train) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    factor = partial(schedule_factor, config.schedule, total_steps=total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    loss_fn = loss_function(loss_for(dataset, config.loss))
    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
    step = 0
    records = None
    if resume is not None:
        model.load_state_dict(resume.state["model"])
        optimizer.load_state_dict(resume.state["optimizer"])
        scheduler.load_state_dict(resume.state["scheduler"])
        restore_rng(resume.state)
        records = {name: list(values) for name, values in resume.records.items()}
        step = resume.state["step"]
    batch = (x_train[: config.diagnostic_batch_size], y_train[: config.diagnostic_batch_size])
    recorder = Recorder(model, loss_fn, diagnostic_batch=batch, sharpness_iterations=config.sharpness_iterations,
                        seed=seed, records=records)
    record = recorder.records
    run = RunResult(optimizer_name, lr, depth, seed, model_args, list(recorder.layers), recorder.normalised,
                    record, model=model)

    order: Tensor | None = None  # this epoch's permutation, on the data's device
    read_at_once = loss_read_at_once(x_train.device)

    def diagnostic_step(s: int) -> bool:  # whether step s takes the diagnostics (and the records are read before)
        return config.diagnostics_every > 0 and s % config.diagnostics_every == 0

    agreed_stop = False  # under data_parallel, a stop any rank asked for during the last step's all-reduce
    while step < total_steps:
        if agreed_stop if data_parallel else should_stop is not None and should_stop():
            run.completed = False
            break
        if snapshot is not None:
            snapshot(step, model, False)
        epoch, index = divmod(step, steps_per_epoch)
        if index == 0 or order is None:  # moved to the data once an epoch, so that no step copies indices to it
            order = batch_order(len(x_train), seed, epoch).to(x_train.device)
        batch = order[index * config.batch_size : (index + 1) * config.batch_size]
        learning_rate = optimizer.param_groups[0]["lr"]
        diagnose = diagnostic_step(step)
        if diagnose:
            # before the training forward pass, so that optimisers with hooks (K-FAC) see the training batch last
            optimizer_mode(optimizer, training=False)
            recorder.record_diagnostics(step, learning_rate, config.weight_decay, optimizer)

        optimizer_mode(optimizer, training=True)
        model.train()
        if data_parallel:
            loss, agreed_stop = batch_gradient(model, loss_fn, optimizer, x_train, y_train, batch,
                                               should_stop is not None and should_stop())
        else:
            loss = loss_fn(model(x_train[batch]), y_train[batch])
        if read_at_once and not torch.isfinite(loss):
            run.diverged = True
            break
        if not data_parallel:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        before = recorder.snapshot()
        recorder.record_step(loss.detach(), learning_rate, before)
        optimizer.step()
        scheduler.step()
        recorder.record_update(before, diagnosed=diagnose)
        step += 1

        epoch_end = step % steps_per_epoch == 0
        if epoch_end or diagnostic_step(step):
            recorder.flush()  # the evaluation or the diagnostics next wait for the device anyway
        if recorder.diverged_at is not None:  # a loss not finite, in a block of losses copied from the device
            break
        if epoch_end:
            optimizer_mode(optimizer, training=False)
            evaluations = (*evaluate(model, loss_fn, x_train, y_train, split=data_parallel),
                           *evaluate(model, loss_fn, x_test, y_test, split=data_parallel))
            for name, value in zip(EPOCH_RECORDS, evaluations):
                record[name].append(value)
            if not math.isfinite(evaluations[0]):
                run.diverged = True
                break
        if progress is not None:
            progress(step, total_steps, run)

    recorder.flush()
    if recorder.diverged_at is not None:  # found late: the run ends where it would have, had each loss been read
        run.diverged, run.completed, step = True, True, recorder.diverged_at
    if run.diverged:
        recorder.end_at(step)
    if snapshot is not None and run.completed:
        snapshot(step, model, True)
    optimizer_mode(optimizer, training=False)  # the checkpoint holds the weights that are evaluated
    run.steps = step
    run.state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, **rng_state()}
    return run
