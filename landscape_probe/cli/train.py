"""`probe train`: train one zoo model with several optimisers on the same data, and compare them.

Options become a frozen :class:`~landscape_probe.training.loop.TrainConfig`, one call
to :func:`~landscape_probe.training.grid.train_many` trains the grid and writes the
results file and checkpoints, and :func:`print_summary` prints the table back
from the file (as ``probe show`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from landscape_probe.cli.app import DebugOption, DeviceOption, app, command_line, console, error_console, user_errors
from landscape_probe.errors import ProbeError
from landscape_probe.training.summary import print_summary

if TYPE_CHECKING:
    from rich.progress import Progress


@app.command("train")
def train_command(
    ctx: typer.Context,
    optimizer: Annotated[
        list[str] | None, typer.Option("--optimizer", help="Optimiser name (repeat for several), or all.")
    ] = None,
    lr: Annotated[
        str | None, typer.Option(help="One learning rate for all, or per optimiser: fromage=0.01,adam=1e-3. "
                                      "Default: each optimiser's own.")
    ] = None,
    lr_grid: Annotated[int, typer.Option(help="Try N rates a decade apart around each base rate; keep the best.")] = 1,
    model: Annotated[str, typer.Option(help="Zoo model: mlp, cnn or transformer.")] = "mlp",
    depth: Annotated[int, typer.Option(help="Number of layers (ignored with --depths).")] = 4,
    depths: Annotated[str | None, typer.Option(help="Depth sweep, e.g. 2,8,16,32.")] = None,
    width: Annotated[int, typer.Option(help="Hidden width (CNN channels, transformer d_model).")] = 64,
    activation: Annotated[str, typer.Option(help="relu, leaky_relu, tanh or gelu.")] = "relu",
    init: Annotated[str, typer.Option(help="lecun, xavier, kaiming or orthogonal.")] = "lecun",
    norm: Annotated[str, typer.Option(help="Normalisation after hidden layers: none, batch or layer.")] = "none",
    dataset: Annotated[str, typer.Option(help="digits, mnist1d, synthetic:k=v,... or a .npz/.pt file.")] = "digits",
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 64,
    weight_decay: Annotated[float, typer.Option(help="Weight decay λ, for the optimisers that use it.")] = 0.0,
    momentum: Annotated[float, typer.Option(help="Momentum, for the optimisers that use it.")] = 0.9,
    schedule: Annotated[str, typer.Option(help="constant, step, exponential, inverse or cosine.")] = "constant",
    seeds: Annotated[str, typer.Option(help="Seeds of weights and batch order, e.g. 0,1,2.")] = "0",
    diagnostics_every: Annotated[
        int, typer.Option(help="Sharpness, noise scale, spectral shift every K steps (0: never).")
    ] = 50,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for results.h5, checkpoints and plots.")
    ] = Path("runs/train"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing results in --output.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted grid in --output with its stored options.")
    ] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw figures into OUTPUT/plots.")] = True,
    formats: Annotated[str, typer.Option("--format", help="Figure formats: png, svg, pdf (comma-separated).")] = "png",
    device: DeviceOption = "auto",
    debug: DebugOption = False,
) -> None:
    """Train with each optimiser on the same model, data, seeds and schedule; record weight norms, updates, curvature.

    Examples:

    [bold]probe train --optimizer fromage --optimizer adam --depth 16[/]

    [bold]probe train --optimizer momentum --optimizer adam --optimizer fromage --lr-grid 3 --depths 2,8,16,32[/]

    [bold]probe train --resume --output runs/train[/]   (after Ctrl-C)
    """
    with user_errors(debug):
        from landscape_probe.figures import draw_figures, parse_formats
        from landscape_probe.training.grid import read_resumable, stop_on_interrupt, train_many
        from landscape_probe.training.loop import TrainConfig

        figure_formats = parse_formats(formats) if plots else ()
        if resume:
            config = TrainConfig.from_dict(read_resumable(output).config)
            console.print(f"Resuming {output} with its stored options; other options are ignored.")
        else:
            names = _optimizer_names(optimizer or ["fromage"])
            config = TrainConfig(
                optimizers=names, learning_rates=_learning_rates(lr, names), lr_grid=lr_grid,
                depths=_integers(depths, "--depths") if depths else (depth,), seeds=_integers(seeds, "--seeds"),
                model=model, width=width, activation=activation, init=init, norm=norm, dataset=dataset,
                epochs=epochs, batch_size=batch_size, weight_decay=weight_decay, momentum=momentum,
                schedule=schedule, diagnostics_every=diagnostics_every, device=device,
            )
        with _progress() as progress, stop_on_interrupt() as should_stop:
            outcome = train_many(config, output, command_line=command_line(ctx), overwrite=overwrite, resume=resume,
                                 on_progress=_progress_callback(progress), should_stop=should_stop)
        print_summary(outcome.results_path, console)
        if figure_formats:
            for path in draw_figures(outcome.results_path, output / "plots", figure_formats, "train"):
                console.print(f"wrote {path}")
        if outcome.incomplete:
            error_console.print(f"Stopped early; results so far are in {outcome.results_path}. "
                                f"Continue with: probe train --resume --output {output}")
            raise typer.Exit(130)


def _optimizer_names(names: list[str]) -> tuple[str, ...]:
    from landscape_probe.training.optim import OPTIMIZER_NAMES

    wanted = [n.strip().lower() for name in names for n in name.split(",") if n.strip()]
    if "all" in wanted:
        return OPTIMIZER_NAMES
    unknown = [n for n in wanted if n not in OPTIMIZER_NAMES]
    if unknown:
        raise ProbeError(f"Unknown optimizer '{unknown[0]}'; use one of: {', '.join(OPTIMIZER_NAMES)}, or all.")
    return tuple(dict.fromkeys(wanted))


def _learning_rates(text: str | None, names: tuple[str, ...]) -> dict[str, float]:
    """``0.01`` (every optimiser) or ``fromage=0.01,adam=1e-3`` (those named)."""
    if text is None:
        return {}
    if "=" not in text:
        return {name: _positive(text, "--lr") for name in names}
    rates = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in names:
            raise ProbeError(
                f"Cannot read '{item}' in --lr; write NAME=RATE for an optimizer you train ({', '.join(names)}).")
        rates[name.strip()] = _positive(value, "--lr")
    return rates


def _positive(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProbeError(f"{option} needs a number, not '{text.strip()}'.") from None
    if not value > 0 or value == float("inf"):
        raise ProbeError(f"{option} must be a positive number, not {text.strip()}.")
    return value


def _integers(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ProbeError(f"{option} needs comma-separated integers, e.g. 2,8,16; got '{text}'.") from None
    if not values:
        raise ProbeError(f"{option} needs at least one integer.")
    return values


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console)


def _progress_callback(progress: Progress) -> Callable[[str, int, int, float], None]:
    tasks: dict[str, int] = {}

    def update(name: str, step: int, total: int, loss: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total, completed=step - 1, loss="")
        progress.update(tasks[name], completed=step, loss=f"{loss:.4g}")

    return update
