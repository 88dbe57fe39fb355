"""What ``lp.train`` returns and a train results file holds: the runs of a grid and their records.

A :class:`TrainResult` is written to and read from one HDF5 file (layout in
docs/hdf5-format.md, "Files written by probe train"; each run's datasets are
declared in :class:`~landscape_probe.training.records.RunRecords`). Every run's
records are numpy arrays named like their datasets: ``run.records["loss"]``
has shape (S,), ``run.records["weight_norm"]`` (S, L) with columns in
``run.layer_names`` order.

Example:
    >>> import numpy as np
    >>> from landscape_probe.training.records import empty_records
    >>> records = {**empty_records(), "loss": [2.0, 1.5], "learning_rate": [0.1, 0.1],
    ...            "gradient_norm": [1.0, 0.5], "weight_norm": [[1.0], [1.1]], "relative_update": [[0.1], [0.1]]}
    >>> run = RunResult("sgd", 0.1, 1, 0, {"name": "mlp"}, ["weight"], [], records, steps=2, best_of_grid=True)
    >>> result = TrainResult([run], config={"optimizers": ["sgd"]})
    >>> result.runs[0].records["weight_norm"].shape
    (2, 1)
    >>> frame = result.to_pandas()  # needs pandas
    >>> list(frame.columns[:9])
    ['run', 'optimizer', 'lr', 'depth', 'seed', 'step', 'loss', 'learning_rate', 'gradient_norm']
    >>> frame["weight_norm[weight]"].tolist()
    [1.0, 1.1]
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.errors import ProbeError
from landscape_probe.training.records import EPOCH_RECORDS, PER_DIAGNOSTIC, PER_LAYER, PER_STEP, as_arrays
from landscape_probe.training.store import RunResult, read_run, summary_rows, write_run
from landscape_probe.tables import print_whole

if TYPE_CHECKING:
    import pandas
    from rich.table import Table

KIND = "train"


@dataclass
class TrainResult:
    """The runs of a training grid (or of one hand-written loop), their settings and provenance.

    Attributes:
        runs: one :class:`~landscape_probe.training.store.RunResult` per (optimizer, lr, depth, seed),
            in the order trained (read back: in file order).
        config: the experiment's settings (``TrainConfig.to_dict()``), stored as JSON.
        loss_units: units of the loss-valued records: ``nats`` for cross-entropy,
            ``squared target units`` for MSE.
        incomplete: some planned runs have not finished (a stop request); resumable.
        attrs: the file's root attributes (provenance: tool and torch version, command line, device, ...).
        path: the results file this result was read from or last saved to (None if never).
    """

    runs: list[RunResult]
    config: dict[str, Any] = field(default_factory=dict)
    loss_units: str = "nats"
    incomplete: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.runs = [replace(run, records=as_arrays(run.records, layers=len(run.layer_names),
                                                    normalised=len(run.normalised_layer_names)))
                     for run in self.runs]

    def run(self, name: str) -> RunResult:
        """The run called ``name`` (e.g. ``fromage_lr0.01_depth16_seed0``).

        Raises:
            ProbeError: no run has that name.
        """
        for run in self.runs:
            if run.name == name:
                return run
        raise ProbeError(f"No run named '{name}'; the runs are {', '.join(r.name for r in self.runs)}.")

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write the results file atomically (a temporary name, then rename); returns its path.

        Raises:
            ProbeError: ``path`` exists and ``overwrite`` is False, or it cannot be written.
        """
        from landscape_probe.hdf5 import atomic_h5, provenance

        path = Path(path)
        attrs = self.attrs or provenance(command_line="", device="", seed=None)
        root = {**attrs, "config": json.dumps(self.config, sort_keys=True), "incomplete": bool(self.incomplete)}
        with atomic_h5(path, kind=KIND, attrs=root, overwrite=overwrite) as h5:
            runs = h5.create_group("runs")
            for run in self.runs:
                write_run(runs.create_group(run.name), run, self.loss_units)
        self.path = path
        return path

    @classmethod
    def load(cls, path: Path | str) -> TrainResult:
        """Read a train results file (this version's, or one written by an earlier one).

        Raises:
            ProbeError: the file is missing, not a results file, or holds another kind of results.
        """
        from landscape_probe.hdf5 import open_results, read_attrs

        with open_results(path) as h5:
            if h5.attrs["kind"] != KIND:
                raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not train results.")
            attrs = read_attrs(h5)
            groups = list(h5["runs"].values())
            runs = [read_run(group) for group in groups]
            units = str(groups[0]["loss"].attrs["units"]) if groups else "nats"
        return cls(runs, json.loads(attrs["config"]), units, bool(attrs["incomplete"]), attrs, Path(path))

    def plot(self, folder: Path | str, formats: tuple[str, ...] = ("png",)) -> list[Path]:
        """Draw every figure into ``folder`` (from a results file, as ``probe plot`` does); returns the files."""
        from landscape_probe.figures import parse_formats
        from landscape_probe.training.plots import draw

        chosen = parse_formats(",".join(formats))
        if self.path is not None:
            return draw(self.path, Path(folder), chosen)
        with tempfile.TemporaryDirectory() as scratch:
            copy = TrainResult(self.runs, self.config, self.loss_units, self.incomplete, self.attrs)
            results_path = copy.save(Path(scratch) / "results.h5")
            return draw(results_path, Path(folder), chosen)

    def table(self, title: str | None = None) -> Table:
        """The summary table ``probe show`` prints: each optimiser and depth at its best learning rate.

        Columns: final training loss (mean over seeds, in :attr:`loss_units`), final train and
        test accuracy, and how many seeds diverged. A run with no finished epoch shows NaN.
        """
        from rich.table import Table

        title = title or f"probe train: {self.path or 'results'}"
        table = Table(title=title + (" [bold red](incomplete)[/]" if self.incomplete else ""))
        loss_column = f"final train loss ({self.loss_units})"
        for column in ("optimizer", "depth", "lr", loss_column, "train acc", "test acc", "diverged"):
            table.add_column(column, justify="left" if column == "optimizer" else "right")
        for row in summary_rows(self.runs):
            table.add_row(row.optimizer, str(row.depth), f"{row.lr:g}", f"{row.train_loss:.4g}",
                          f"{row.train_accuracy:.3f}", f"{row.test_accuracy:.3f}",
                          f"[red]{row.diverged}/{row.seeds}[/]" if row.diverged else f"0/{row.seeds}")
        return table

    def summary(self) -> str:
        """The text ``probe show`` prints for this result, without colours."""
        from rich.console import Console

        console = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=False)
        print_whole(console, self.table())
        return console.file.getvalue()

    def to_pandas(self, records: str = "steps") -> pandas.DataFrame:
        """The records as a long table, for analysis with pandas (an optional dependency).

        Args:
            records: ``"steps"``: one row per (run, step) with the per-step records
                and, at the diagnostic steps, the diagnostics (NaN at other steps);
                ``"epochs"``: one row per (run, epoch) with the per-epoch records.
                Every frame starts with the columns ``run, optimizer, lr, depth, seed``;
                a per-layer record becomes one column per layer, ``weight_norm[<layer>]``.

        Raises:
            ProbeError: pandas is not installed, or ``records`` is neither value.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ProbeError("to_pandas needs pandas; install it with: pip install pandas") from None
        if records not in ("steps", "epochs"):
            raise ProbeError(f"records must be 'steps' or 'epochs', not '{records}'.")
        frames = []
        for run in self.runs:
            if records == "epochs":
                frame = pd.DataFrame(_columns(run, EPOCH_RECORDS))
                frame.insert(0, "epoch", range(1, len(frame) + 1))
            else:
                frame = pd.DataFrame(_columns(run, PER_STEP))
                frame.insert(0, "step", range(len(frame)))
                diagnostics = pd.DataFrame(_columns(run, PER_DIAGNOSTIC)).rename(columns={"diagnostic_steps": "step"})
                frame = frame.merge(diagnostics, on="step", how="outer")
            for position, key in enumerate(("run", "optimizer", "lr", "depth", "seed")):
                frame.insert(position, key, run.name if key == "run" else getattr(run, key))
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _columns(run: RunResult, names: tuple[str, ...]) -> dict[str, Any]:
    """The records ``names`` of one run as columns; a per-layer record gives one column per layer."""
    columns: dict[str, Any] = {}
    for name in names:
        values = run.records[name]
        if name in PER_LAYER:
            for i, layer in enumerate(getattr(run, PER_LAYER[name])):
                columns[f"{name}[{layer}]"] = values[:, i]
        else:
            columns[name] = values
    return columns
