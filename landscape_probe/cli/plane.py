"""`probe plane`: the loss on a 2-D plane of weight space, and the trust region drawn on it.

Options become the keywords of :func:`landscape_probe.landscape.plane.plane`
(``lp.plane``), whose result is saved while the grid fills, summarised and drawn.
"""

from __future__ import annotations

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
    ShardOption,
    SplitOption,
    print_and_draw,
    run_name,
)


@commands.command("plane")
def plane_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint (any format probe info reads).")],
    data: DataOption = None,
    x: Annotated[str | None, typer.Option("--x", help="Coefficients a of d₁: START:STOP:COUNT (default -1:1:21, "
                                          "or covering the --trajectory).")] = None,
    y: Annotated[str | None, typer.Option("--y", help="Coefficients b of d₂: START:STOP:COUNT.")] = None,
    trajectory: Annotated[
        Path | None, typer.Option(help="A probe train run folder saved with --save-every: the plane of its first "
                                  "two principal directions, with the training path drawn on it.")
    ] = None,
    direction_x: Annotated[str, typer.Option(help="d₁: random or gradient (filter-normalised), or hessian:K / "
                                                  "hessian:FILE.h5:K (a unit Hessian eigenvector).")] = "random",
    direction_y: Annotated[str, typer.Option(help="d₂: as --direction-x.")] = "random",
    measure: Annotated[
        str, typer.Option(help="loss (forward passes only) or gradient (also the relative gradient change, and "
                          "where deep relative trust and Euclidean trust predict it reaches --threshold).")
    ] = "loss",
    threshold: Annotated[float, typer.Option(help="The relative gradient change whose contours are drawn.")] = 1.0,
    select: Annotated[str | None, typer.Option(help="Glob(s) on parameter names that move, e.g. 'hidden.*'.")] = None,
    include_1d: Annotated[bool, typer.Option("--include-1d", help="Also move biases and norm parameters.")] = False,
    probe_size: ProbeSizeOption = 512,
    split: SplitOption = "train",
    loss: LossOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set and the random directions.")] = 0,
    power_iterations: Annotated[int, typer.Option(help="Most Hessian-vector products for λ_max.")] = 50,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: CHECKPOINT-NAME_plane.h5 here).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted plane in OUTPUT.")] = False,
    plots: PlotsOption = None,
    no_plots: NoPlotsOption = False,
    formats: FormatOption = "png",
    overwrite: OverwriteOption = False,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust_checkpoint: TrustOption = False,
    output_key: OutputKeyOption = None,
    shard: ShardOption = "work",
    debug: DebugOption = False,
) -> None:
    """Evaluate the loss on the plane W + a·d₁ + b·d₂ and draw contours, a heat map and a surface.

    The grid is saved while it fills (every 30 s and on Ctrl-C), so an interrupted plane resumes
    with --resume. With --measure gradient the figure trust_region shows where the measured
    relative gradient change reaches --threshold beside where deep relative trust and Euclidean
    trust predict it does.

    Examples:

    [bold]probe plane sample_checkpoints/mlp2_digits.pt --x -1:1:31 --y -1:1:31[/]

    [bold]probe plane model.pt --direction-x gradient --measure gradient --x 0:0.5:21 --y -0.5:0.5:21[/]

    [bold]probe plane model.pt --direction-x hessian:1 --direction-y hessian:2 --x -0.5:0.5:21 --y -0.5:0.5:21[/]

    [bold]probe plane runs/x/sgd_lr0.1_depth4_seed0/checkpoint.pt --trajectory runs/x/sgd_lr0.1_depth4_seed0[/]

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe plane model.pt --shard data --probe-size 8192[/] (the probe set divided among ranks)
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats
        from landscape_probe.folders import check_folder
        from landscape_probe.landscape.plane import plane
        from landscape_probe.landscape.summary import print_plane

        parse_formats(formats)  # a wrong --format is refused before the plane is computed
        output = output or Path.cwd() / f"{run_name(checkpoint)}_plane.h5"
        plots_dir = plots or output.with_name(output.stem + "_plots")
        if not no_plots:
            check_folder(plots_dir, "--plots")
        result = plane(
            checkpoint, data, x=x, y=y, trajectory=trajectory, direction_x=direction_x, direction_y=direction_y, measure=measure,
            threshold=threshold, select=select, include_1d=include_1d, probe_size=probe_size, split=split, loss=loss,
            device=device, dtype=dtype, seed=seed, power_iterations=power_iterations, arch=arch,
            arch_kwargs=parse_arch_kwargs(arch_kwargs), trust_checkpoint=trust_checkpoint, output=output,
            resume=resume, overwrite=overwrite, progress=True, output_key=output_key,
            command_line=command_line(ctx), shard=shard,
        )
        print_and_draw(result, output, printer=print_plane, plots_dir=plots_dir, no_plots=no_plots,
                       formats=formats)  # lp.plane saved the file itself
