"""`probe export`: a results file as CSV tables or JSON, for R, spreadsheets and other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from landscape_probe.cli.app import DebugOption, commands, say_wrote, user_errors
from landscape_probe.errors import ProbeError


@commands.command()
def export(
    results: Annotated[Path, typer.Argument(help="A results file written by probe slice or probe train.")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Folder for one CSV table per group and 2-D dataset.")]
    = None,
    json: Annotated[Path | None, typer.Option("--json", help="One JSON file holding the whole results file.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that exist.")] = False,
    debug: DebugOption = False,
) -> None:
    """Export a results file as CSV tables (--csv DIR) or one JSON document (--json FILE).

    Examples:

    [bold]probe export mlp16_digits_slice.h5 --csv mlp16_csv[/]

    [bold]probe export runs/train/results.h5 --json train.json[/]
    """
    with user_errors(debug):
        from landscape_probe.export import export_csv, export_json

        if (csv is None) == (json is None):
            raise ProbeError("Give exactly one of --csv FOLDER or --json FILE.")
        written = export_csv(results, csv, overwrite=overwrite) if csv else [export_json(results, json, overwrite=overwrite)]
        for path in written:
            say_wrote(path)
