"""`probe plot` and `probe show`: redraw figures and reprint summaries from a results file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape_probe.cli.app import DebugOption, app, console, user_errors
from landscape_probe.errors import ProbeError

KINDS = ("slice", "train")


def _results_kind(path: Path) -> str:
    from landscape_probe.hdf5 import open_results

    with open_results(path) as h5:
        kind = str(h5.attrs["kind"])
    if kind not in KINDS:
        raise ProbeError(f"'{path}' holds results of kind '{kind}', which this version cannot show; "
                         f"it knows {', '.join(KINDS)}.")
    return kind


@app.command()
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
        from landscape_probe.figures import draw_figures, parse_formats

        kind = _results_kind(results)
        out_dir = output or results.with_name(results.stem + "_plots")
        written = draw_figures(results, out_dir, parse_formats(formats), kind)
        for path in written:
            console.print(f"wrote {path}")


@app.command()
def show(
    results: Annotated[Path, typer.Argument(help="A results file written by probe slice or probe train.")],
    debug: DebugOption = False,
) -> None:
    """Print the summary of a results file again.

    Example: [bold]probe show runs/mlp16.h5[/]
    """
    with user_errors(debug):
        kind = _results_kind(results)
        from landscape_probe.slicing.summary import print_summary as print_slice
        from landscape_probe.training.summary import print_summary as print_train

        printers = {"slice": print_slice, "train": print_train}
        printers[kind](results, console)
