"""`probe plot` and `probe show`: redraw figures and reprint summaries from a results file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape_probe.cli.app import DebugOption, commands, console, say_wrote, user_errors

@commands.command()
def plot(
    results: Annotated[Path, typer.Argument(help="A results file written by probe slice or probe train.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the figures (default: beside the file).")
    ] = None,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: png, svg, pdf.")] = "png",
    debug: DebugOption = False,
) -> None:
    """Redraw the figures of a results file.

    Example: [bold]probe plot runs/mlp16.h5 --format png,pdf[/]
    """
    with user_errors(debug):
        from landscape_probe.figures import parse_formats
        from landscape_probe.folders import check_folder
        from landscape_probe.results import draw

        chosen = parse_formats(formats)
        out_dir = output or results.with_name(results.stem + "_plots")
        check_folder(out_dir, "--output")
        written = draw(results, out_dir, chosen)
        for path in written:
            say_wrote(path)


@commands.command()
def show(
    results: Annotated[Path, typer.Argument(help="A results file written by probe slice or probe train.")],
    debug: DebugOption = False,
) -> None:
    """Print the summary of a results file again.

    Example: [bold]probe show runs/mlp16.h5[/]
    """
    with user_errors(debug):
        from landscape_probe.results import print_summary

        print_summary(results, console())
