"""``lp.train``: train a model with several optimisers on the same data, seeds and schedule.

This is what ``probe train`` does, as one function call: the keyword names are
the command's options in snake_case, and with ``output`` it writes the same
files (``OUTPUT/results.h5`` and one checkpoint folder per run).

Example:
    >>> import torch
    >>> x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    >>> result = train("mlp:width=8", (x, y), optimizers=("sgd", "fromage"), depth=2, epochs=1,
    ...                batch_size=32, diagnostics_every=0, device="cpu")
    >>> [run.name for run in result.runs]
    ['sgd_lr0.1_depth2_seed0', 'fromage_lr0.01_depth2_seed0']
    >>> result.runs[0].records["weight_norm"].shape   # 2 steps, 2 layers
    (2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from rich.progress import Progress
    from torch import nn

    from landscape_probe.training.result import TrainResult


def train(
    model: str | Callable[[], nn.Module] = "mlp",
    data: Any = "digits",
    *,
    arch_kwargs: dict[str, Any] | None = None,
    output_key: str | None = None,
    init_from: Path | str | None = None,
    trust_checkpoint: bool = False,
    optimizers: str | Sequence[str] = ("fromage",),
    lr: float | str | dict[str, float | str] | None = None,
    lr_grid: int = 1,
    lr_auto_threshold: float = 0.5,
    depth: int = 4,
    depths: Sequence[int] | None = None,
    width: int = 64,
    activation: str = "relu",
    init: str = "lecun",
    norm: str = "none",
    loss: str | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    optimizer_kwargs: dict[str, Any] | None = None,
    schedule: str = "constant",
    seeds: int | Sequence[int] = (0,),
    diagnostics_every: int = 50,
    diagnostic_batch_size: int = 128,
    sharpness_iterations: int = 20,
    device: str = "auto",
    save_every: int = 0,
    tensorboard: Path | str | None = None,
    shard: str | None = None,
    output: Path | str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    command_line: str | None = None,
) -> TrainResult:
    """Train every (optimizer, learning rate, depth, seed) of the grid; see DESIGN.md §5.

    At a given seed and depth every optimiser starts from the same weights and
    sees the same batches; ``lr_grid`` = n tries n rates a decade apart around
    each base rate and marks the best (lowest mean final training loss).

    Args:
        model: a zoo spec (``"mlp"``, ``"mlp:depth=16,width=64"``, ``"cnn"``, ``"transformer"``),
            whose options override ``depth``, ``width``, ...; your own model as an import path
            ``"mypkg.models:make_net"`` (called as ``make_net(**arch_kwargs)``); or a function that
            builds your own ``nn.Module``. A model of your own is built once per run, under the
            run's seed, and its checkpoints record it by import path (``module:function``), so
            ``probe slice`` rebuilds it with no option when that import path resolves.
        data: a built-in name or spec (``"digits"``), a ``.npz``/``.pt`` file, ``(x, y)``
            or ``(x_train, y_train, x_test, y_test)`` tensors, a torch ``Dataset`` or
            ``DataLoader``. With ``resume``, None reloads the data the grid was started with.
        arch_kwargs: keyword arguments for a model given as an import path.
        output_key: for a model returning a tuple, dict or ``ModelOutput``, the key or index of the
            output to train on (default: ``logits``, else the first tensor); the loss, diagnostics and
            evaluation all take it, and ``config["output_key"]`` records it for ``probe slice``.
        init_from: a checkpoint (any format ``probe info`` reads) whose weights every run starts
            from instead of fresh ones, so that every optimiser fine-tunes the same network.
        trust_checkpoint: let ``init_from`` be a pickle that needs code to load (a whole
            ``nn.Module``); without it such a file is refused. Only for files you trust.
        optimizers: names from the optimizer table (``"fromage"``, ``"adam"``, ...), ``"all"`` (every row
            whose optional package, if it needs one, is installed), or
            ``"module:Class"`` for any ``torch.optim.Optimizer`` subclass (e.g. ``"mypkg.optim:MyOpt"``),
            built as ``Class(model.parameters(), lr=lr, **optimizer_kwargs)``.
        lr: one base rate for all, a dict per optimizer, or None for each one's default
            (for ``module:Class``, the default of the class's ``lr`` argument); ``"auto"`` (for all, or
            as a dict value) advises each optimiser's rate from the trust region of the starting weights,
            per depth (:mod:`landscape_probe.training.auto_lr`), recorded in ``config["auto_learning_rates"]``.
        lr_auto_threshold: the relative gradient change ``"auto"`` keeps the first step under.
        optimizer_kwargs: constructor keywords: a flat dict for the ``module:Class`` optimizers (or, when
            none is trained, for every optimizer), or one dict per optimizer name, e.g.
            ``{"kfac": {"damping_mode": "eigen", "kl_clip": 0.001}, "madam": {"g_bound": 5}}``.
        lr_grid, depth, depths, width, activation, init, norm, loss, epochs, batch_size,
            weight_decay, momentum, schedule, seeds, diagnostics_every, diagnostic_batch_size,
            sharpness_iterations, device: as the ``probe train`` options of the same names
            (``loss``: ``cross_entropy`` or ``mse``, by default from the targets).
        save_every: with ``output``, save each run's weights every K steps (and the last) to
            ``RUN/trajectory/``, for ``lp.plane(..., trajectory=RUN)``; 0 saves none.
        tensorboard: a folder for TensorBoard event files, one sub-folder per run, written while it
            trains (per-step, per-epoch and diagnostic curves; needs the ``tensorboard`` package).
        shard: under ``torchrun``, ``"work"`` hands the runs to the ranks as they free up
            (:mod:`landscape_probe.training.run_queue`); ``"data"`` trains each run on
            every rank, each taking its part of every batch, the gradients summed over the ranks (data
            parallelism, :mod:`landscape_probe.training.data_parallel`); None: ``"data"`` for a single run,
            else ``"work"``.
        output: folder for ``results.h5`` and the checkpoints; None writes nothing.
        overwrite: replace an existing ``OUTPUT/results.h5``.
        resume: continue the interrupted grid in ``output`` with its stored settings
            (the other settings, but ``trust_checkpoint`` and ``tensorboard``, are ignored).
        progress: show a progress bar per run.
        command_line: recorded as the file's provenance (``probe train`` passes its own).

    Under ``torchrun`` the runs are handed to the ranks (``shard="work"``: ``save_every`` is then refused),
    or each run's batches (``shard="data"``); rank 0 alone writes ``output``, and every rank returns every run
    (docs/distributed.md).

    Returns:
        The runs and their records (numpy arrays). After a first Ctrl-C the current
        run stops between two steps and the result is ``incomplete`` (resumable with ``output``).

    Raises:
        ProbeError: for any setting or data the grid cannot use, or existing results
            without ``overwrite``.
    """
    from landscape_probe import distributed
    from landscape_probe.data.inputs import as_dataset
    from landscape_probe.devices import resolve_device
    from landscape_probe.hdf5 import provenance
    from landscape_probe.training import grid, run_queue
    from landscape_probe.checkpoints.architecture import is_import_path
    from landscape_probe.training.loop import TrainConfig, chosen_output
    from landscape_probe.training.user_model import ImportedModel, factory_args

    with distributed.process_group(device):
        if tensorboard is not None:
            from landscape_probe.training.tensorboard import require_tensorboard

            require_tensorboard()
        factory = _factory(model, arch_kwargs)
        if resume:
            if output is None:
                raise ProbeError("resume needs the output folder of the interrupted grid.")
            config = TrainConfig.from_dict(distributed.from_main(grid.read_resumable(output).config
                                                                 if distributed.is_main() else None))
            if not callable(model) and is_import_path(config.model):
                factory = ImportedModel(config.model, dict(config.arch_kwargs))
            dataset = grid.load_training_data(config) if data is None else as_dataset(data)
        else:
            dataset = as_dataset(data)
            names = _optimizer_names(_optimizer_list(optimizers))
            depths = _depths(model, factory, depth, depths)
            fixed, auto = _learning_rates(lr, names)
            config = TrainConfig(
                optimizers=names, learning_rates=fixed, auto_lr_threshold=lr_auto_threshold, lr_grid=lr_grid,
                depths=depths,
                seeds=(seeds,) if isinstance(seeds, int) else tuple(seeds),
                model=model if factory is None else factory_args(factory)["factory"],
                arch_kwargs=factory_args(factory)["arch_kwargs"] if factory is not None else {},
                init_from=str(init_from) if init_from is not None else None, width=width, activation=activation,
                init=init, norm=norm, dataset=str(data) if isinstance(data, (str, Path)) else dataset.name, loss=loss,
                epochs=epochs, batch_size=batch_size, weight_decay=weight_decay, momentum=momentum,
                optimizer_kwargs=_optimizer_kwargs(optimizer_kwargs, names), schedule=schedule,
                diagnostics_every=diagnostics_every, save_every=save_every, diagnostic_batch_size=diagnostic_batch_size,
                sharpness_iterations=sharpness_iterations, device=device,
            )
            import dataclasses

            config = dataclasses.replace(config, output_key=chosen_output(config, dataset, factory, output_key))
            if auto:
                from landscape_probe.training.auto_lr import auto_learning_rates
                from landscape_probe.training.user_model import read_initial_weights

                weights = read_initial_weights(config.init_from, trust_checkpoint) if config.init_from else None
                config = dataclasses.replace(
                    config, auto_learning_rates=auto_learning_rates(config, dataset, auto, factory, weights))
        from landscape_probe.training.data_parallel import uses_data_parallel

        data_parallel = uses_data_parallel(shard, len(grid.planned_runs(config)))
        if distributed.launched() and config.save_every and not data_parallel:
            raise ProbeError("save_every writes each run's weights while it trains, which under torchrun with "
                             "--shard work would be every rank writing to the output folder; use --shard data, "
                             "or run it as one process.")
        attrs = provenance(command_line=command_line or "landscape_probe.train (Python API)",
                           device=str(resolve_device(config.device)), seed=config.seeds[0])
        with _progress(progress and distributed.is_main()) as bar, run_queue.stop_on_interrupt() as should_stop:
            return grid.train_grid(config, dataset, output, attrs=attrs, overwrite=overwrite, resume=resume,
                                   on_progress=_progress_callback(bar), should_stop=should_stop, factory=factory,
                                   trust_checkpoint=trust_checkpoint, tensorboard=tensorboard,
                                   shard="data" if data_parallel else "work")


def _optimizer_list(optimizers: str | Sequence[str]) -> list[str]:
    """``"fromage,adam"`` or ``("fromage", "adam")`` as a list of names."""
    items = [optimizers] if isinstance(optimizers, str) else list(optimizers)
    return [n.strip() if ":" in n else n.strip().lower() for item in items for n in str(item).split(",") if n.strip()]


def _optimizer_names(wanted: list[str]) -> tuple[str, ...]:
    """The table's names (``"all"``: every row whose package is installed, then any ``module:Class``),
    each ``module:Class`` resolved now."""
    from landscape_probe.optim import OPTIMIZER_NAMES, OPTIMIZERS, optimizer_class

    paths = [n for n in wanted if ":" in n]
    for path in paths:
        optimizer_class(path)
    if "all" in wanted:
        return (*(n for n in OPTIMIZER_NAMES if OPTIMIZERS[n].available), *dict.fromkeys(paths))
    unknown = [n for n in wanted if ":" not in n and n not in OPTIMIZER_NAMES]
    if unknown:
        raise ProbeError(f"Unknown optimizer '{unknown[0]}'; use one of: {', '.join(OPTIMIZER_NAMES)}, all, "
                         "or module:Class.")
    return tuple(dict.fromkeys(wanted))


def _optimizer_kwargs(kwargs: dict[str, Any] | None, names: tuple[str, ...]) -> dict[str, Any]:
    if not kwargs:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ProbeError("Optimizer keywords must be a dict of names to values, e.g. {\"betas\": [0.9, 0.99]}.")
    if all(isinstance(v, dict) for v in kwargs.values()):
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ProbeError(f"Optimizer keywords are given for {', '.join(unknown)}, which is not among the "
                             f"optimizers trained ({', '.join(names)}).")
    return dict(kwargs)


def _learning_rates(lr: float | str | dict[str, float | str] | None,
                    names: tuple[str, ...]) -> tuple[dict[str, float], tuple[str, ...]]:
    """The fixed rates by optimizer, and the optimizers whose rate is ``"auto"``."""
    if lr is None:
        return {}, ()
    rates = dict(lr) if isinstance(lr, dict) else {name: lr for name in names}
    for name, value in rates.items():
        if name not in names:
            raise ProbeError(f"A learning rate is given for '{name}', which is not among the optimizers trained "
                             f"({', '.join(names)}).")
        if value != "auto" and (isinstance(value, (bool, str)) or not isinstance(value, (int, float))
                                or not 0 < value < float("inf")):
            raise ProbeError(f"The learning rate must be a positive number or auto, not {value}.")
    auto = tuple(name for name, value in rates.items() if value == "auto")
    return {name: float(value) for name, value in rates.items() if value != "auto"}, auto


def _factory(model: Any, arch_kwargs: dict[str, Any] | None) -> Callable[[], nn.Module] | None:
    """None for a zoo spec; else what builds the user's model (an import path becomes an ``ImportedModel``)."""
    from torch import nn

    from landscape_probe.checkpoints.architecture import is_import_path
    from landscape_probe.training.user_model import ImportedModel

    if arch_kwargs is not None and not isinstance(arch_kwargs, dict):
        raise ProbeError(f"arch_kwargs must be a dict of keyword arguments, not a {type(arch_kwargs).__name__}.")
    if isinstance(model, str) and is_import_path(model):
        return ImportedModel(model.strip(), dict(arch_kwargs or {}))
    if arch_kwargs:
        raise ProbeError("Architecture keywords (--arch-kwargs) are for a model given as an import path "
                         "module:function; a zoo spec takes its options in the spec (mlp:width=32), and a "
                         "function you pass is called with none.")
    if isinstance(model, str):
        return None
    if isinstance(model, nn.Module):
        raise ProbeError("Pass a function that builds the model (e.g. lambda: MyNet()), not a built model: "
                         "every run starts from fresh weights drawn under its own seed.")
    if callable(model):
        return model
    raise ProbeError(f"model must be a zoo spec such as 'mlp:depth=4' or a function returning an nn.Module, "
                     f"not a {type(model).__name__}.")


def _depths(model: Any, factory: Callable | None, depth: int, depths: Sequence[int] | None) -> tuple[int, ...]:
    """The grid's depths: ``depths``, else the spec's ``depth``, else ``depth``; for a user's model, its layer count."""
    from landscape_probe.models.zoo import parse_zoo_spec

    if factory is not None:
        if depths is not None:
            raise ProbeError("depths needs a zoo model; a model of your own has the depth its function gives it.")
        from landscape_probe.params import select_layers
        from landscape_probe.training.loop import init_model

        return (len(select_layers(init_model({}, 0, factory))),)
    spec_depth = parse_zoo_spec(model).get("depth")
    if spec_depth is not None and depths is not None:
        raise ProbeError(f"The model spec '{model}' sets a depth; leave out depths, or the depth from the spec.")
    if depths is not None:
        return tuple(int(d) for d in depths)
    return (int(spec_depth if spec_depth is not None else depth),)


def _progress(show: bool) -> Any:
    import contextlib

    if not show:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())


def _progress_callback(progress: Progress | None) -> Callable[[str, int, int, float], None] | None:
    if progress is None:
        return None
    tasks: dict[str, int] = {}

    def update(name: str, step: int, total: int, loss: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total, completed=step - 1, loss="")
        shown = f"{loss:.4g}" if loss == loss else ""  # NaN: no block of losses copied from the device yet
        progress.update(tasks[name], completed=step, loss=shown)

    return update
