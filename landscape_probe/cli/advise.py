"""`probe advise`: learning rates from the measured trust region of a checkpoint (:mod:`landscape_probe.slicing.advice`)."""

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
    console,
    parse_arch_kwargs,
    say_wrote,
    user_errors,
)
from landscape_probe.cli.common import (
    DataOption,
    DtypeOption,
    LossOption,
    OutputKeyOption,
    OverwriteOption,
    ProbeSizeOption,
    SplitOption,
)


@commands.command("advise")
def advise_command(
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint (any format probe info reads).")],
    data: DataOption = None,
    threshold: Annotated[
        float, typer.Option(help="Largest relative gradient change ||g(t) − g(0)|| / ||g(0)|| to stay under.")
    ] = 0.5,
    min_scale: Annotated[float, typer.Option(help="Smallest relative step measured.")] = 1e-6,
    max_scale: Annotated[float, typer.Option(help="Largest relative step measured.")] = 1.0,
    points: Annotated[int, typer.Option(help="Relative steps measured, log-spaced.")] = 25,
    select: Annotated[str | None, typer.Option(help="Glob(s) on parameter names to advise on, e.g. 'hidden.*'.")] = None,
    probe_size: ProbeSizeOption = 512,
    split: SplitOption = "train",
    loss: LossOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set and λ_max's Lanczos start.")] = 0,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the advice to this JSON file.")] = None,
    overwrite: OverwriteOption = False,
    output_key: OutputKeyOption = None,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust_checkpoint: TrustOption = False,
    debug: DebugOption = False,
) -> None:
    """Advise learning rates that keep a step inside the measured trust region.

    Slices along the gradient with relative scaling, all layers together and each layer
    alone, finds the largest relative step before the gradient changes by --threshold,
    and turns it into (a) a Fromage/LARS learning rate, (b) per-layer and whole-network
    SGD rates η_l = κ_l·||W_l||/||g_l||, and (c) Adam's rate under update ≈ lr·sign(g),
    each with its caveat.

    Examples:

    [bold]probe advise sample_checkpoints/mlp16_digits.pt[/]

    [bold]probe advise model.pt --data digits --threshold 0.2 --json advice.json[/]
    """
    with user_errors(debug):
        import json

        from landscape_probe.atomic import atomic_path
        from landscape_probe.hdf5 import check_writable
        from landscape_probe.slicing.advice import advise
        from landscape_probe.slicing.advice_report import print_advice

        if json_path is not None:
            check_writable(json_path, overwrite)
        advice = advise(checkpoint, data, threshold=threshold, min_scale=min_scale, max_scale=max_scale,
                        points=points, select=select, probe_size=probe_size, split=split, loss=loss, seed=seed,
                        device=device, dtype=dtype, output_key=output_key, arch=arch,
                        arch_kwargs=parse_arch_kwargs(arch_kwargs), trust_checkpoint=trust_checkpoint,
                        progress=True)
        print_advice(advice, console())
        if json_path is not None:
            document = {"checkpoint": str(checkpoint), **advice.to_dict()}
            with atomic_path(json_path) as temporary:
                temporary.write_text(json.dumps(document, indent=2) + "\n")
            say_wrote(json_path)
