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
    commands,
    command_line,
    parse_arch_kwargs,
    user_errors,
)
from landscape_probe.cli.common import (
    DataOption,
    DtypeOption,
    FormatOption,
    LossOption,
    NoPlotsOption,
    OutputKeyOption,
    OverwriteOption,
    PlotsOption,
    ProbeSizeOption,
    SplitOption,
    check_outputs,
    run_name,
    save_print_draw,
)


@commands.command("interpolate")
def interpolate_command(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="Checkpoint A (α = 0).")],
    b: Annotated[Path, typer.Argument(help="Checkpoint B (α = 1), of the same architecture.")],
    data: DataOption = None,
    range_: Annotated[
        str, typer.Option("--range", help="α values START:STOP:COUNT, evenly spaced; 0 and 1 are always added.")
    ] = "-0.5:1.5:41",
    probe_size: ProbeSizeOption = 512,
    split: SplitOption = "train",
    loss: LossOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set.")] = 0,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: A-NAME_to_B-NAME.h5 here).")
    ] = None,
    plots: PlotsOption = None,
    no_plots: NoPlotsOption = False,
    formats: FormatOption = "png",
    overwrite: OverwriteOption = False,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust_checkpoint: TrustOption = False,
    output_key: OutputKeyOption = None,
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

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe interpolate a.pt b.pt[/] (the αs divided among ranks)
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats
        from landscape_probe.landscape.interpolate import interpolate
        from landscape_probe.landscape.summary import print_interpolation

        parse_formats(formats)
        output = output or Path.cwd() / f"{run_name(a)}_to_{run_name(b)}.h5"
        plots_dir = check_outputs(output, overwrite, plots, no_plots)
        result = interpolate(
            a, b, data, range=range_, probe_size=probe_size, split=split, loss=loss, device=device, dtype=dtype,
            seed=seed, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs), trust_checkpoint=trust_checkpoint,
            progress=True, output_key=output_key,
        )
        result = dataclasses.replace(result, provenance={**result.provenance, "command_line": command_line(ctx)})
        save_print_draw(result, output, overwrite=overwrite, printer=print_interpolation, plots_dir=plots_dir,
                        no_plots=no_plots, formats=formats)
