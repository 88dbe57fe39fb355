"""`probe slice`: measure function and gradient change along a weight perturbation.

Options become a frozen :class:`~landscape_probe.slicing.engine.SliceConfig`, one call
to :func:`~landscape_probe.slicing.engine.run_slice` does the work, the results file is
written, and :func:`print_summary` prints it back from the file (as ``probe
show`` does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from landscape_probe.cli.app import (
    ArchKwargsOption,
    ArchOption,
    DebugOption,
    DeviceOption,
    TrustOption,
    app,
    command_line,
    console,
    parse_arch_kwargs,
    user_errors,
)
from landscape_probe.slicing.summary import print_summary
from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.slicing.config import SliceConfig

@app.command("slice")
def slice_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint to slice (any format probe info reads).")],
    data: Annotated[
        str | None,
        typer.Option(help="Data set: digits, mnist1d, synthetic:k=v,..., or a .npz/.pt file. "
                     "Default: the one recorded in a self-describing checkpoint."),
    ] = None,
    probe_size: Annotated[int, typer.Option(help="Examples in the probe set.")] = 512,
    split: Annotated[str, typer.Option(help="Which split the probe set comes from: train or test.")] = "train",
    loss: Annotated[str | None, typer.Option(help="cross_entropy or mse (default: from the data set).")] = None,
    direction: Annotated[
        str, typer.Option(help="gradient (descent), random, eigenvector (top Hessian), or checkpoint:OTHER.pt.")
    ] = "gradient",
    seed: Annotated[int, typer.Option(help="Seed of the probe set, random direction and power iteration.")] = 0,
    scaling: Annotated[
        str | None,
        typer.Option(help="relative (κ_l = t in every layer), global (||ΔW|| = t), filter, or none (ΔW = t·d). "
                     "Default: relative; none for a checkpoint direction, so t = 1 reaches the other checkpoint."),
    ] = None,
    norm: Annotated[
        str, typer.Option(help="Layer norm for κ and relative scaling: frobenius, spectral, neuron.")
    ] = "frobenius",
    scales: Annotated[
        str | None, typer.Option(help="Explicit scales, e.g. 0.001,0.01,0.1 (overrides --max-scale).")
    ] = None,
    max_scale: Annotated[float, typer.Option(help="Largest scale T; scales are log-spaced up to T.")] = 1.0,
    min_scale: Annotated[float | None, typer.Option(help="Smallest log-spaced scale (default T/100000: five decades).")] = None,
    points: Annotated[int, typer.Option(help="Number of log-spaced scales.")] = 21,
    two_sided: Annotated[bool, typer.Option("--two-sided", help="Also evaluate −t for every t.")] = False,
    layers: Annotated[bool, typer.Option("--layers", help="Also sweep each layer alone.")] = False,
    select: Annotated[str | None, typer.Option(help="Glob(s) on parameter names to perturb, e.g. 'hidden.*'.")] = None,
    include_1d: Annotated[bool, typer.Option("--include-1d", help="Also perturb biases and norm parameters.")] = False,
    device: DeviceOption = "auto",
    dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
    power_iterations: Annotated[int, typer.Option(help="Most Hessian-vector products for λ_max.")] = 50,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: CHECKPOINT-NAME_slice.h5 here).")
    ] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for figures (default: beside the results file).")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not draw figures.")] = False,
    formats: Annotated[str, typer.Option("--format", help="Figure formats: png, svg, pdf (comma-separated).")] = "png",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing results file.")] = False,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust_checkpoint: TrustOption = False,
    debug: DebugOption = False,
) -> None:
    """Perturb the weights along a direction and compare the measured change with DRT and Euclidean trust.

    Examples:

    [bold]probe slice sample_checkpoints/mlp16_digits.pt --layers[/]

    [bold]probe slice model.pt --data digits --direction random --scales 0.01,0.1,1 --two-sided[/]

    [bold]probe slice a.pt --direction checkpoint:b.pt --scales 0.25,0.5,0.75,1[/]
    """
    with user_errors(debug):
        from landscape_probe.figures import draw_figures, parse_formats
        from landscape_probe.hdf5 import check_writable
        from landscape_probe.slicing.config import SliceConfig, log_scales

        figure_formats = parse_formats(formats)
        config = SliceConfig(
            direction=direction,
            seed=seed,
            scaling=scaling,
            norm=norm,
            scales=_parse_scales(scales) if scales else log_scales(max_scale, points, min_scale),
            two_sided=two_sided,
            per_layer=layers,
            select=select,
            include_1d=include_1d,
            probe_size=probe_size,
            loss=loss,
            device=device,
            dtype=dtype,
            power_iterations=power_iterations,
        )
        config.check()
        output = output or default_output(checkpoint)
        check_writable(output, overwrite)
        loaded_arch_kwargs = parse_arch_kwargs(arch_kwargs)
        _slice_and_write(
            checkpoint, data, split, config, output, overwrite, arch, loaded_arch_kwargs, trust_checkpoint,
            command_line(ctx),
        )
        print_summary(output, console)
        if not no_plots:
            plots_dir = plots or output.with_name(output.stem + "_plots")
            for path in draw_figures(output, plots_dir, figure_formats, "slice"):
                console.print(f"wrote {path}")


def default_output(checkpoint: Path) -> Path:
    """``NAME_slice.h5`` in the current folder, NAME the checkpoint's stem.

    A run folder of ``probe train`` holds ``checkpoint.pt``; there the folder's
    name (``fromage_lr0.01_depth16_seed0``) is used instead, so that slicing
    several runs does not write to one file.
    """
    name = checkpoint.parent.resolve().name if checkpoint.stem == "checkpoint" else checkpoint.stem
    return Path.cwd() / f"{name or checkpoint.stem}_slice.h5"


def _slice_and_write(
    checkpoint: Path,
    data: str | None,
    split: str,
    config: SliceConfig,
    output: Path,
    overwrite: bool,
    arch: str | None,
    arch_kwargs: dict | None,
    trust: bool,
    invocation: str,
) -> None:
    """Load the checkpoint and probe set, run the slice with a progress bar, write the results file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from landscape_probe.checkpoints.load import load_checkpoint
    from landscape_probe.data.datasets import check_model_accepts, load_dataset, load_dataset_spec, parse_data_spec, probe_set
    from landscape_probe.devices import resolve_device
    from landscape_probe.losses import default_loss_name
    from landscape_probe.hdf5 import provenance
    from landscape_probe.slicing.store import write_slice
    from landscape_probe.slicing.engine import run_slice

    loaded = load_checkpoint(checkpoint, arch, arch_kwargs, trust)
    if data is not None:
        name, options = parse_data_spec(data)
        dataset = load_dataset(name, **options)
    elif loaded.data:
        dataset = load_dataset_spec(loaded.data)
    else:
        raise ProbeError(f"'{checkpoint}' does not record its data set; name one with --data (e.g. --data digits).")
    check_model_accepts(loaded.model, dataset)
    x, y = probe_set(dataset, config.probe_size, config.seed, split)
    other = None
    if config.direction_kind == "checkpoint":
        other = load_checkpoint(config.direction.partition(":")[2], arch, arch_kwargs, trust)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("slicing", total=None)

        def advance(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        loss_name = config.loss or default_loss_name(dataset)
        result = run_slice(loaded.model, x, y, loss_name, config, advance, other.model if other else None)
    attrs = provenance(command_line=invocation, device=str(resolve_device(config.device)), seed=config.seed,
                       checkpoint=checkpoint)
    attrs.update(
        checkpoint_format=loaded.format,
        architecture=loaded.architecture,
        data=json.dumps(dataset.spec, sort_keys=True),
        split=split,
        other_checkpoint_sha256=other.sha256 if other else "",
    )
    write_slice(output, result, attrs, overwrite=overwrite)


def _parse_scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ProbeError(
            f"Cannot read --scales '{text}'; write numbers separated by commas, e.g. 0.001,0.01,0.1."
        ) from None

