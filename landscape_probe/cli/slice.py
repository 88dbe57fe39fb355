"""`probe slice`: measure function and gradient change along a weight perturbation.

Options become the keywords of :func:`landscape_probe.slicing.api.slice` (``lp.slice``),
whose result is saved, summarised (as ``probe show`` prints it) and drawn.
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
    console,
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
    check_outputs,
    note_random_tokens,
    run_name,
    save_print_draw,
)
from landscape_probe.errors import ProbeError

@commands.command("slice")
def slice_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint to slice (any format probe info reads).")],
    data: DataOption = None,
    probe_size: ProbeSizeOption = 512,
    split: SplitOption = "train",
    loss: LossOption = None,
    direction: Annotated[
        str, typer.Option(help="gradient (descent), random, eigenvector (top Hessian), hessian:K (the K-th "
                          "Hessian eigenvector; hessian:FILE.h5:K reads it from a probe hessian file), "
                          "checkpoint:OTHER.pt, or optimizer:NAME[:lr]: the step that optimiser would take from W (its next step from the "
                          "state a probe train checkpoint saved for it, else its first); the summary says step / "
                          "breakdown.")
    ] = "gradient",
    measure: Annotated[
        str, typer.Option(help="gradient: every point's gradient, λ_max and every prediction; loss: forward passes "
                          "only (loss, accuracy, function change, KL beside DRT), no gradient change or λ_max.")
    ] = "gradient",
    seed: Annotated[int, typer.Option(help="Seed of the probe set, random direction and λ_max's Lanczos start.")] = 0,
    scaling: Annotated[
        str | None,
        typer.Option(help="relative (κ_l = t in every layer), global (||ΔW|| = t), filter, or none (ΔW = t·d). "
                     "Default: relative; none for a checkpoint or optimizer direction, so t = 1 reaches the other "
                     "checkpoint, or is the optimiser's step."),
    ] = None,
    norm: Annotated[
        str, typer.Option(help="Layer norm for κ and relative scaling: frobenius, spectral, neuron.")
    ] = "frobenius",
    scales: Annotated[
        str | None, typer.Option(help="Explicit scales, e.g. 0.001,0.01,0.1 (overrides --max-scale).")
    ] = None,
    max_scale: Annotated[
        float | None, typer.Option(help="Largest scale T; scales are log-spaced up to T. Default 1; 100 for an "
                                        "optimizer direction.")
    ] = None,
    min_scale: Annotated[float | None, typer.Option(help="Smallest log-spaced scale (default T/100000: five decades).")] = None,
    points: Annotated[int, typer.Option(help="Number of log-spaced scales.")] = 21,
    two_sided: Annotated[bool, typer.Option("--two-sided", help="Also evaluate −t for every t.")] = False,
    layers: Annotated[bool, typer.Option("--layers", help="Also sweep each layer alone.")] = False,
    select: Annotated[str | None, typer.Option(help="Glob(s) on parameter names to perturb, e.g. 'hidden.*'.")] = None,
    include_1d: Annotated[bool, typer.Option("--include-1d", help="Also perturb biases and norm parameters.")] = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    power_iterations: Annotated[int, typer.Option(help="Most Hessian-vector products for λ_max.")] = 50,
    chunk_size: Annotated[int, typer.Option(help="Most probe examples per forward and backward pass: a larger probe "
                                            "set is taken in chunks, its mean loss, gradient and Hessian-vector "
                                            "products accumulated.")] = 1024,
    points_per_pass: Annotated[
        str, typer.Option(help="auto, or N: slice points evaluated together, in one torch.func.vmap pass per chunk "
                          "(same numbers up to rounding); auto: on a GPU as many as --memory-budget holds, at "
                          "most 32, on a CPU 1 (batching measured no faster there); 1: one at a time. One at a time anyway for a "
                          "TorchScript model, one that fails under vmap, and --measure loss.")
    ] = "auto",
    memory_budget: Annotated[
        str, typer.Option(help="Memory that --points-per-pass auto may give one pass's points (their weights, "
                          "gradients and saved activations), e.g. 512MiB, 2GiB.")
    ] = "1GiB",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: CHECKPOINT-NAME_slice.h5 here).")
    ] = None,
    plots: PlotsOption = None,
    no_plots: NoPlotsOption = False,
    formats: FormatOption = "png",
    overwrite: OverwriteOption = False,
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust_checkpoint: TrustOption = False,
    output_key: OutputKeyOption = None,
    shard: ShardOption = "work",
    allow_nonfinite: Annotated[
        bool,
        typer.Option("--allow-nonfinite", help="Slice weights holding NaN or infinite values; every verdict is "
                     "then 'undefined: non-finite values at W'."),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Perturb the weights along a direction and compare the measured change with DRT and Euclidean trust.

    Examples:

    [bold]probe slice sample_checkpoints/mlp16_digits.pt --layers[/]

    [bold]probe slice model.pt --data digits --direction random --scales 0.01,0.1,1 --two-sided[/]

    [bold]probe slice model.pt --direction random --measure loss --scaling filter[/]

    [bold]probe slice a.pt --direction checkpoint:b.pt --scales 0.25,0.5,0.75,1[/]

    [bold]probe slice model.pt --direction hessian:model_hessian.h5:1 --two-sided[/]

    [bold]probe slice runs/train/adam_lr0.001_depth4_seed0/checkpoint.pt --direction optimizer:adam[/]

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe slice model.pt --layers[/] (points and layers divided among ranks)

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe slice model.pt --shard data --probe-size 8192[/] (the probe set divided among ranks)
    """
    with user_errors(debug):
        from landscape_probe.distributed import is_main
        from landscape_probe.figures import parse_formats
        from landscape_probe.slicing.api import slice as slice_model
        from landscape_probe.slicing.batched_points import parse_points_per_pass
        from landscape_probe.slicing.summary import print_result

        parse_formats(formats)
        explicit_scales = _parse_scales(scales) if scales else None
        output = output or default_output(checkpoint)
        plots_dir = check_outputs(output, overwrite, plots, no_plots)
        result = slice_model(
            checkpoint, data, scales=explicit_scales, direction=direction, measure=measure, scaling=scaling, norm=norm,
            layers=layers, select=select, include_1d=include_1d, probe_size=probe_size, split=split, loss=loss,
            device=device, dtype=dtype, seed=seed, power_iterations=power_iterations, chunk_size=chunk_size,
            max_scale=max_scale, points_per_pass=parse_points_per_pass(points_per_pass), memory_budget=memory_budget,
            min_scale=min_scale, points=points, two_sided=two_sided, arch=arch,
            arch_kwargs=parse_arch_kwargs(arch_kwargs), trust_checkpoint=trust_checkpoint,
            allow_nonfinite=allow_nonfinite, progress=True, output_key=output_key, shard=shard,
        )
        result = dataclasses.replace(result, provenance={**result.provenance, "command_line": command_line(ctx)})
        if result.config.probe_size < probe_size and is_main():
            console().print(f"note: the {split} split holds {result.config.probe_size} examples, fewer than "
                          f"--probe-size {probe_size}; all of them are the probe set.")
        note_random_tokens(result.provenance)
        save_print_draw(result, output, overwrite=overwrite, printer=print_result, plots_dir=plots_dir,
                        no_plots=no_plots, formats=formats)


def default_output(checkpoint: Path) -> Path:
    """``NAME_slice.h5`` in the current folder, NAME the checkpoint's stem.

    A run folder of ``probe train`` holds ``checkpoint.pt``; there the folder's
    name (``fromage_lr0.01_depth16_seed0``) is used instead, so that slicing
    several runs does not write to one file.
    """
    return Path.cwd() / f"{run_name(checkpoint) or checkpoint.stem}_slice.h5"


def _parse_scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ProbeError(
            f"Cannot read --scales '{text}'; write numbers separated by commas, e.g. 0.001,0.01,0.1."
        ) from None

