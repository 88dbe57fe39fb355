"""`probe info`: what a checkpoint holds: its format, architecture and every parameter's norms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from landscape_probe.cli.app import (
    ArchKwargsOption,
    ArchOption,
    DebugOption,
    TrustOption,
    commands,
    console,
    parse_arch_kwargs,
    user_errors,
)
from landscape_probe.tables import print_whole


@dataclass(frozen=True)
class InfoConfig:
    """What ``probe info`` loads: the checkpoint and, for bare weights, the architecture."""

    checkpoint: Path
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    trust: bool = False
    allow_nonfinite: bool = False


@commands.command()
def info(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file of any supported format, or a Hugging Face save_pretrained folder.")],
    arch: ArchOption = None,
    arch_kwargs: ArchKwargsOption = None,
    trust: TrustOption = False,
    allow_nonfinite: Annotated[
        bool, typer.Option("--allow-nonfinite", help="Show a checkpoint whose weights hold NaN or infinite values.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the same information as JSON only.")] = False,
    debug: DebugOption = False,
) -> None:
    """Show a checkpoint's format, architecture and each parameter's shape, count and norms.

    Spectral norms are of matrices; a conv kernel (out, in, k, k) is read as an
    (out, in·k·k) matrix. "layer" marks the parameters perturbed by default (ndim ≥ 2).
    A bare state_dict needs no --arch to be listed; a zoo MLP's is recognised from its shapes.

    Examples:

      [bold]probe info sample_checkpoints/mlp16_digits.pt[/]

      [bold]probe info sample_checkpoints/mlp2_digits_state_dict.pt --arch mlp:depth=2,width=64[/]

      [bold]probe info net.pt --arch mypkg.models:make_net --arch-kwargs '{"width": 64}' --json[/]
    """
    with user_errors(debug):
        import json

        from landscape_probe.checkpoints.load import WeightsOnly, load_checkpoint
        from landscape_probe.checkpoints.summary import summarize, summarize_weights

        config = InfoConfig(checkpoint, arch, parse_arch_kwargs(arch_kwargs), trust, allow_nonfinite)
        try:
            loaded = load_checkpoint(
                config.checkpoint, config.arch, config.arch_kwargs, config.trust, allow_nonfinite=config.allow_nonfinite
            )
            summary = summarize(loaded)
        except WeightsOnly as only:
            summary = summarize_weights(config.checkpoint, only.state_dict)
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    """Print a checkpoint summary (from ``checkpoint.summarize``) as a header and a table."""
    from rich.table import Table  # not at the top: probe --help stays without it

    out = console()
    out.print(f"[bold]{summary['path']}[/]  sha256 {summary['sha256'][:16]}…", highlight=False)
    out.print(f"format: [cyan]{summary['format']}[/]   architecture: [cyan]{summary['architecture']}[/]")
    if summary["data"] is not None or summary["step"] is not None:
        label = "default probe set" if summary["format"] == "hugging_face" else "trained on"
        out.print(f"{label}: {summary['data']}   step: {summary['step']}", highlight=False)
    totals = summary["totals"]
    table = Table(show_footer=True)
    table.add_column("parameter", footer="total", overflow="fold")
    table.add_column("shape")
    table.add_column("count", justify="right", footer=f"{totals['numel']:,}")
    table.add_column("Frobenius", justify="right", footer=f"{totals['frobenius_norm']:.4g}")
    table.add_column("spectral", justify="right")
    table.add_column("layer", justify="center")
    for row in summary["parameters"]:
        spectral = "–" if row["spectral_norm"] is None else f"{row['spectral_norm']:.4g}"
        table.add_row(
            row["name"] if row["finite"] else f"{row['name']} [bold red](non-finite)[/]",
            "×".join(map(str, row["shape"])) or "scalar",
            f"{row['numel']:,}",
            f"{row['frobenius_norm']:.4g}",
            spectral,
            "yes" if row["is_layer"] else "no",
        )
    print_whole(out, table)
    out.print(
        f"{totals['numel']:,} parameters in {totals['tensors']} tensors; "
        f"{totals['layer_numel']:,} in {totals['layers']} layers (ndim ≥ 2).",
        highlight=False,
    )
    if totals["non_finite"]:
        out.print(f"[bold red]{totals['non_finite']} tensors hold NaN or infinite values.[/]", highlight=False)
