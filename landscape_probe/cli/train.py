"""`probe train`: train one model (from the zoo, or your own) with several optimisers on the same data, and compare them.

Options become the keywords of :func:`landscape_probe.training.api.train` (``lp.train``),
which trains the grid and writes the results file and checkpoints;
:func:`print_summary` prints the table back from the file (as ``probe show`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape_probe.cli.app import (
    ArchKwargsOption,
    DebugOption,
    DeviceOption,
    TrustOption,
    command_line,
    commands,
    console,
    error_console,
    parse_arch_kwargs,
    parse_json_object,
    results_kept,
    say_wrote,
    user_errors,
)
from landscape_probe.errors import ProbeError
from landscape_probe.training.summary import print_summary


@commands.command("train")
def train_command(
    ctx: typer.Context,
    optimizer: Annotated[
        list[str] | None,
        typer.Option("--optimizer", help="Optimiser (repeat for several): sgd, momentum, nesterov, adagrad, rmsprop, "
                     "adam, adamw, fromage, lars, nero, madam, agd, kfac, noise_adaptive, lion, lamb, adafactor, "
                     "muon, soap, schedulefree_adamw (pip install schedulefree); all (those installed); or your own torch.optim.Optimizer class as module:Class. Default: fromage alone."),
    ] = None,
    optimizer_kwargs: Annotated[
        str | None, typer.Option(help="JSON constructor keywords: flat for the module:Class optimizers (for every "
                                 "optimizer when none is trained), or per optimizer, e.g. "
                                 "'{\"kfac\": {\"damping_mode\": \"eigen\", \"kl_clip\": 0.001}, \"madam\": {\"g_bound\": 5}}'.")
    ] = None,
    lr: Annotated[
        str | None, typer.Option(help="One learning rate for all, or per optimiser: fromage=0.01,adam=1e-3; "
                                      "auto (or adam=auto) advises it from the trust region of the starting "
                                      "weights, as probe advise does. Default: each optimiser's own.")
    ] = None,
    lr_grid: Annotated[int, typer.Option(help="Try N rates a decade apart around each base rate; keep the best.")] = 1,
    model: Annotated[
        str, typer.Option(help="Zoo model: mlp, cnn or transformer, or a spec such as mlp:width=32,init=xavier.")
    ] = "mlp",
    depth: Annotated[int, typer.Option(help="Number of layers (ignored with --depths).")] = 4,
    depths: Annotated[str | None, typer.Option(help="Depth sweep, e.g. 2,8,16,32.")] = None,
    width: Annotated[int, typer.Option(help="Hidden width (CNN channels, transformer d_model).")] = 64,
    activation: Annotated[str, typer.Option(help="relu, leaky_relu, tanh or gelu.")] = "relu",
    init: Annotated[str, typer.Option(help="lecun, xavier, kaiming or orthogonal.")] = "lecun",
    norm: Annotated[str, typer.Option(help="Normalisation after hidden layers: none, batch or layer.")] = "none",
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Your own model instead of --model: an import path such as mypkg.models:make_net "
                     "(called with --arch-kwargs; the current folder is importable), or a zoo spec."),
    ] = None,
    arch_kwargs: ArchKwargsOption = None,
    output_key: Annotated[
        str | None,
        typer.Option(help="For a model returning a tuple, dict or ModelOutput: the key or index of the output to "
                     "train on (default: logits, else the first tensor); recorded, and reused by probe slice."),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option("--init-from", help="Start every run from this checkpoint's weights (fine-tune) instead of a "
                     "fresh init; it must hold the architecture trained."),
    ] = None,
    trust_checkpoint: TrustOption = False,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", help="Also write each run's curves and diagnostics for TensorBoard to this "
                     "folder while it trains (pip install 'landscape_probe\\[tensorboard]'); results.h5 stays the record."),
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Data set: digits, mnist1d, synthetic:k=v,..., or a .npz/.pt file "
                                 "(the same specs as probe slice). Default: digits.")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", hidden=True, help="Old name of --data.")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 64,
    weight_decay: Annotated[float, typer.Option(help="Weight decay λ, for the optimisers that use it.")] = 0.0,
    momentum: Annotated[float, typer.Option(help="Momentum, for the optimisers that use it.")] = 0.9,
    schedule: Annotated[str, typer.Option(help="constant, step, exponential, inverse or cosine.")] = "constant",
    seeds: Annotated[str, typer.Option(help="Seeds of weights and batch order, e.g. 0,1,2.")] = "0",
    diagnostics_every: Annotated[
        int, typer.Option(help="Sharpness, noise scale, spectral shift and spectral relative update every K steps "
                          "(0: never).")
    ] = 50,
    save_every: Annotated[
        int, typer.Option(help="Save each run's weights every K steps (and the last) to RUN/trajectory/, for "
                          "probe plane --trajectory RUN (0: never).")
    ] = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for results.h5, checkpoints and plots.")
    ] = Path("runs/train"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing results in --output.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted grid in --output with its stored options.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(help="Under torchrun: work hands the sweep's runs to the ranks as they free up; data trains each run on "
                     "every rank, each taking an equal part of every batch (--batch-size stays the whole batch), "
                     "the gradients summed over the ranks. Default: data for a single run, work for a sweep."),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw figures into OUTPUT/plots.")] = True,
    formats: Annotated[str, typer.Option("--format", help="Figure formats: png, svg, pdf (comma-separated).")] = "png",
    device: DeviceOption = "auto",
    debug: DebugOption = False,
) -> None:
    """Train with each optimiser on the same model, data, seeds and schedule; record weight norms, updates, curvature.

    Without --optimizer it trains Fromage alone.

    Examples:

    [bold]probe train --optimizer fromage --optimizer adam --depth 16[/]

    [bold]probe train --optimizer momentum --optimizer adam --optimizer fromage --lr-grid 3 --depths 2,8,16,32[/]

    [bold]probe train --optimizer fromage --optimizer mypkg.optim:MyOpt --optimizer-kwargs '{"betas": [0.9, 0.99]}'[/]

    [bold]probe train --arch mypkg.models:make_net --arch-kwargs '{"width": 64}' --data my.npz --optimizer adam --optimizer muon[/]

    [bold]probe train --init-from pretrained.pt --optimizer sgd --optimizer fromage[/]   (every optimiser from the same weights)

    [bold]probe train --resume --output runs/train[/]   (after Ctrl-C)

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe train --optimizer sgd --optimizer adam --seeds 0,1[/]   (runs divided among ranks)

    [bold]torchrun --standalone --nproc_per_node 4 -m landscape_probe train --optimizer adam --batch-size 256[/]   (one run: each batch divided among ranks)
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats

        if data is not None and dataset is not None:
            raise ProbeError("Give the data once, with --data (--dataset is its old name).")
        if arch is not None and ctx.get_parameter_source("model").name == "COMMANDLINE":
            raise ProbeError("Give the model once: --model for a zoo model, or --arch for your own.")

        figure_formats = parse_formats(formats) if plots else ()
        keywords = dict(
            optimizers=optimizer or ["fromage"], lr=_learning_rate(lr), lr_grid=lr_grid, depth=depth,
            depths=_integers(depths, "--depths") if depths else None, width=width, activation=activation,
            init=init, norm=norm, epochs=epochs, batch_size=batch_size, weight_decay=weight_decay,
            momentum=momentum, optimizer_kwargs=parse_json_object(optimizer_kwargs, "--optimizer-kwargs", '{"betas": [0.9, 0.99]}'),
            schedule=schedule, seeds=_integers(seeds, "--seeds"),
            diagnostics_every=diagnostics_every, save_every=save_every, device=device, shard=shard,
        )
        from landscape_probe.distributed import is_main
        from landscape_probe.training.api import train
        from landscape_probe.training.grid import read_resumable

        main = is_main()  # under torchrun rank 0 alone reads and writes the output folder, and prints
        if resume and main:
            read_resumable(output)
            console().print(f"Resuming {output} with its stored options; other options, but --trust-checkpoint "
                          "and --tensorboard, are ignored.")
        result = train(arch or model, None if resume else data or dataset or "digits", **keywords,
                       arch_kwargs=parse_arch_kwargs(arch_kwargs), output_key=output_key, init_from=init_from,
                       trust_checkpoint=trust_checkpoint, tensorboard=tensorboard, output=output, overwrite=overwrite,
                       resume=resume, progress=True, command_line=command_line(ctx))
        if not main:
            raise typer.Exit(130 if result.incomplete else 0)
        print_summary(result.path, console())
        if figure_formats:
            with results_kept(result.path):
                for path in result.plot(output / "plots", figure_formats):
                    say_wrote(path)
        if result.incomplete:
            error_console().print(f"Stopped early; results so far are in {result.path}. "
                                f"Continue with: probe train --resume --output {output}")
            raise typer.Exit(130)


def _learning_rate(text: str | None) -> float | str | dict[str, float | str] | None:
    """``0.01`` or ``auto`` (every optimiser), or ``fromage=0.01,adam=auto`` (those named)."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    if "=" not in text:
        return _positive(text, "--lr")
    rates = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ProbeError(f"Cannot read '{item}' in --lr; write NAME=RATE for an optimizer you train.")
        name = name.strip()
        auto = value.strip().lower() == "auto"
        rates[name if ":" in name else name.lower()] = "auto" if auto else _positive(value, "--lr")
    return rates


def _positive(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProbeError(f"{option} needs a number, not '{text.strip()}'.") from None
    if not value > 0 or value == float("inf"):
        raise ProbeError(f"{option} must be a positive number, not {text.strip()}.")
    return value


EXAMPLES = {"--depths": "2,8,16", "--seeds": "0,1,2"}


def _integers(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ProbeError(f"{option} needs comma-separated integers, e.g. {EXAMPLES[option]}; "
                         f"got '{text}'.") from None
    if not values:
        raise ProbeError(f"{option} needs at least one integer.")
    return values
