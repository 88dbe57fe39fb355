"""`probe hessian`: the loss Hessian's top eigenvalues, trace and spectral density at a checkpoint.

Options become the keywords of :func:`landscape_probe.landscape.hessian.hessian`
(``lp.hessian``), whose result is saved, summarised and drawn.
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
    ShardOption,
    SplitOption,
    check_outputs,
    note_random_tokens,
    run_name,
    save_print_draw,
)


@commands.command("hessian")
def hessian_command(
    ctx: typer.Context,
    checkpoint: Annotated[Path, typer.Argument(help="The checkpoint (any format probe info reads).")],
    data: DataOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many of the largest eigenvalues (and eigenvectors).")] = 5,
    iterations: Annotated[int, typer.Option(help="Most Lanczos products for the top-k (per layer too).")] = 100,
    tolerance: Annotated[
        float, typer.Option(help="Stop Lanczos when every residual ||Hv − λv|| is at most this times max |λ|.")
    ] = 1e-6,
    trace_samples: Annotated[int, typer.Option(help="Most Hutchinson samples for the trace (per layer too).")] = 200,
    trace_tolerance: Annotated[
        float, typer.Option(help="Stop sampling once the trace's standard error is at most this fraction of it "
                            "(0: draw all --trace-samples).")
    ] = 0.01,
    density_runs: Annotated[int, typer.Option(help="Stochastic Lanczos quadrature runs averaged for the density.")] = 5,
    density_steps: Annotated[int, typer.Option(help="Lanczos products in each quadrature run.")] = 50,
    per_layer: Annotated[
        bool, typer.Option("--per-layer", help="Also every layer's own Hessian block: its top-k and trace.")
    ] = False,
    select: Annotated[str | None, typer.Option(help="Glob(s) on parameter names to include, e.g. 'hidden.*'.")] = None,
    include_1d: Annotated[bool, typer.Option("--include-1d", help="Also include biases and norm parameters.")] = False,
    probe_size: ProbeSizeOption = 512,
    split: SplitOption = "train",
    loss: LossOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe set and the random vectors.")] = 0,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results file (default: CHECKPOINT-NAME_hessian.h5 here).")
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
    debug: DebugOption = False,
) -> None:
    """Estimate the loss Hessian's top eigenvalues, trace and eigenvalue density on the probe set.

    The top-k eigenpairs come from Lanczos with full reorthogonalisation, the trace from
    Hutchinson's estimator (reported with its standard error), the density from stochastic
    Lanczos quadrature. The eigenvectors are saved in the results file. With --per-layer,
    every layer's own block H_ll gets its top-k and trace, in one table.

    Examples:

    [bold]probe hessian sample_checkpoints/mlp2_digits.pt --top-k 3[/]

    [bold]probe hessian model.pt --per-layer --include-1d --dtype float64[/]

    [bold]torchrun --standalone --nproc_per_node 2 -m landscape_probe hessian model.pt --shard data[/]
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats
        from landscape_probe.landscape.hessian import hessian
        from landscape_probe.landscape.hessian_report import print_hessian

        parse_formats(formats)
        output = output or Path.cwd() / f"{run_name(checkpoint)}_hessian.h5"
        plots_dir = check_outputs(output, overwrite, plots, no_plots)
        result = hessian(
            checkpoint, data, top_k=top_k, iterations=iterations, tolerance=tolerance, trace_samples=trace_samples,
            trace_tolerance=trace_tolerance, density_runs=density_runs, density_steps=density_steps,
            per_layer=per_layer, select=select, include_1d=include_1d, probe_size=probe_size, split=split, loss=loss,
            device=device, dtype=dtype, seed=seed, arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs),
            trust_checkpoint=trust_checkpoint, output_key=output_key, progress=True, shard=shard,
        )
        result = dataclasses.replace(result, provenance={**result.provenance, "command_line": command_line(ctx)})
        note_random_tokens(result.provenance)
        save_print_draw(result, output, overwrite=overwrite, printer=print_hessian, plots_dir=plots_dir,
                        no_plots=no_plots, formats=formats)
