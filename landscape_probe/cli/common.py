"""Options and steps that the measuring commands share: the probe set, the output file, the figures.

Each command that writes a results file checks the output and the figure
folder before any work (:func:`check_outputs`), and after the work saves,
prints and draws the same way (:func:`save_print_draw`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from landscape_probe.cli.app import console, results_kept, say_wrote

DataOption = Annotated[
    str | None,
    typer.Option(help="Data set: digits, mnist1d, synthetic:k=v,..., images:FOLDER, a .npz/.pt file, or for a "
                 "Hugging Face folder text:FILE,seq_len=128 or jsonl:FILE,field=text. Default: the one recorded in a "
                 "self-describing checkpoint; seeded random token ids for a Hugging Face folder."),
]
ProbeSizeOption = Annotated[int, typer.Option(help="Examples in the probe set.")]
SplitOption = Annotated[str, typer.Option(help="Which split the probe set comes from: train or test.")]
LossOption = Annotated[str | None, typer.Option(help="cross_entropy or mse (default: from the data set).")]
DtypeOption = Annotated[str, typer.Option(help="float32 or float64.")]
PlotsOption = Annotated[Path | None, typer.Option(help="Folder for figures (default: beside the results file).")]
NoPlotsOption = Annotated[bool, typer.Option("--no-plots", help="Do not draw figures.")]
FormatOption = Annotated[str, typer.Option("--format", help="Figure formats: png, svg, pdf (comma-separated).")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing results file.")]
ShardOption = Annotated[
    str,
    typer.Option(help="Under torchrun: work divides the points, cells, layers or runs among the ranks; data divides "
                 "the probe set, summing losses, counts, gradients and Hessian-vector products over the ranks "
                 "(probe slice, plane and hessian)."),
]
OutputKeyOption = Annotated[
    str | None,
    typer.Option(help="For a model returning a tuple, dict or ModelOutput: the key or index of the output to "
                 "measure (default: logits, else the first tensor)."),
]


def check_outputs(output: Path, overwrite: bool, plots: Path | None, no_plots: bool) -> Path:
    """Refuse an output or figure folder that cannot be written, before any work; returns the figure folder."""
    from landscape_probe.distributed import is_main
    from landscape_probe.folders import check_folder
    from landscape_probe.hdf5 import check_writable

    plots_dir = plots or output.with_name(output.stem + "_plots")
    if not is_main():  # under torchrun rank 0 alone writes: the other ranks never look at the outputs
        return plots_dir
    check_writable(output, overwrite)
    if not no_plots:
        from landscape_probe.figures import prefetch

        check_folder(plots_dir, "--plots")
        prefetch()
    return plots_dir


def save_print_draw(result: Any, output: Path, *, overwrite: bool, printer: Callable[[Any, Any], None],
                    plots_dir: Path, no_plots: bool, formats: str) -> None:
    """Save the result, print its summary, then draw its figures (a failure there keeps the saved file).

    Under ``torchrun`` rank 0 alone does this; the other ranks never open the file.
    """
    from landscape_probe.distributed import is_main

    if is_main():
        result.save(output, overwrite=overwrite)
    print_and_draw(result, output, printer=printer, plots_dir=plots_dir, no_plots=no_plots, formats=formats)


def print_and_draw(result: Any, output: Path, *, printer: Callable[[Any, Any], None], plots_dir: Path,
                   no_plots: bool, formats: str) -> None:
    """Print the summary of a result saved at ``output``, then draw its figures (a failure there keeps the file).

    Under ``torchrun`` rank 0 alone does this.
    """
    from landscape_probe.distributed import is_main
    from landscape_probe.figures import parse_formats

    if not is_main():
        return
    chosen = parse_formats(formats)
    printer(result, console())
    say_wrote(output)
    if not no_plots:
        with results_kept(output):
            for path in result.plot(plots_dir, chosen):
                say_wrote(path)


def note_random_tokens(provenance: dict[str, Any]) -> None:
    """Say so when the probe set is the seeded random token ids a Hugging Face folder gets with no --data."""
    import json

    from landscape_probe.distributed import is_main

    if json.loads(provenance.get("data") or "{}").get("name") == "tokens" and is_main():
        console().print("note: no --data given, so the probe set is seeded random token ids from the vocabulary; "
                      "--data text:FILE or jsonl:FILE measures on real text.")


def run_name(checkpoint: Path) -> str:
    """A checkpoint's stem, or for a ``probe train`` run's ``checkpoint.pt`` its folder's name."""
    return checkpoint.parent.resolve().name if checkpoint.stem == "checkpoint" else checkpoint.stem
