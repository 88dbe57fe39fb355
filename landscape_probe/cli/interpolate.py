"""`probe interpolate`: loss, accuracy and function change on the line between two checkpoints.

Options become the keywords of :func:`landscape_probe.landscape.interpolate.interpolate`
(``lp.interpolate``), whose result is saved, summarised and drawn.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

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
    results_kept,
    user_errors,
)


@app.command("interpolate")
def interpolate_command(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="Checkpoint A (α = 0).")],
    b: Annotated[Path, typer.Argument(help="Checkpoint B (α = 1), of the same architecture.")],
    data: Annotated[
        str | None,
        typer.Option(help="Data set: digits, mnist1d, synthetic:k=v,..., or a .npz/.pt file. "
                     "Default: the one recorded in checkpoint A."),
    ] = None,
    range_: Annotated[
        str, typer.Option("--range", help="α values START:STOP:COUNT, evenly spaced; 0 and 1 are always added.")
    ] = "-0.5:1.5:41",
    probe_size: Annotated[int, typer.Option(help="Examples in the probe set.")] = 512,
    split: Annotated[str, typer.Option(help="Which split the probe set comes from: train or test.")] = "train",
    loss: Annotated[str | None, typer.Option(help="cross_entropy or mse (default: from the data set).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set.")] = 0,
    device: DeviceOption = "auto",
    dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: A-NAME_to_B-NAME.h5 here).")
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
    """Walk the straight line between two checkpoints: loss, accuracy, function change and the barrier.

    Every floating-point parameter and buffer is interpolated, W(α) = (1 − α)·W_A + α·W_B,
    with forward passes only. The summary gives both end losses, the barrier height
    (the highest loss between them minus the higher end) and deep relative trust of
    the whole step A → B.

    Examples:

    [bold]probe interpolate runs/x/sgd_lr0.1_depth4_seed0/checkpoint.pt runs/x/fromage_lr0.01_depth4_seed0/checkpoint.pt[/]

    [bold]probe interpolate a.pt b.pt --data digits --range -1:2:61[/]
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats
        from landscape_probe.folders import check_folder
        from landscape_probe.hdf5 import check_writable
        from landscape_probe.landscape.interpolate import interpolate
        from landscape_probe.landscape.summary import print_interpolation

        figure_formats = parse_formats(formats)
        output = output or Path.cwd() / f"{_name(a)}_to_{_name(b)}.h5"
        check_writable(output, overwrite)
        plots_dir = plots or output.with_name(output.stem + "_plots")
        if not no_plots:
            check_folder(plots_dir, "--plots")
        result = interpolate(
            a, b, data, range=range_, probe_size=probe_size, split=split, loss=loss, device=device, dtype=dtype,
            seed=seed, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs), trust_checkpoint=trust_checkpoint,
            progress=True,
        )
        result = dataclasses.replace(result, provenance={**result.provenance, "command_line": command_line(ctx)})
        result.save(output, overwrite=overwrite)
        print_interpolation(result, console)
        console.print(f"wrote {output}")
        if not no_plots:
            with results_kept(output):
                for path in result.plot(plots_dir, figure_formats):
                    console.print(f"wrote {path}")


def _name(checkpoint: Path) -> str:
    """A checkpoint's stem, or for a ``probe train`` run's ``checkpoint.pt`` its folder's name."""
    return checkpoint.parent.resolve().name if checkpoint.stem == "checkpoint" else checkpoint.stem
