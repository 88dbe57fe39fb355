"""``probe train --tensorboard DIR``: every run's curves as TensorBoard scalars, written while it trains.

The HDF5 results file stays the record; this is for watching a run. Each run
writes to ``DIR/<run name>/`` (TensorBoard lists the runs side by side), with
the training step s on the x axis:

- ``step/<record>``: the per-step records (loss, learning_rate, gradient_norm), and
  ``step/<record>/<layer>`` for the per-layer ones (weight_norm, relative_update);
- ``epoch/<record>``: the per-epoch records, at s = epoch · steps per epoch;
- ``diagnostics/<record>`` (and ``/<layer>``): the diagnostics, at their diagnostic step.

:meth:`RunLog.update` writes whatever the run's records hold beyond what it
wrote before; the grid calls it after every step, and :meth:`RunLog.close` at
the end of the run. A resumed run writes its records again from the start.
It needs the ``tensorboard`` package (``pip install 'landscape_probe[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landscape_probe.errors import ProbeError
from landscape_probe.training.records import EPOCH_RECORDS, PER_DIAGNOSTIC, PER_LAYER, PER_STEP
from landscape_probe.training.store import RunResult


def require_tensorboard() -> None:
    """Raise, in one sentence, when the ``tensorboard`` package is missing.

    Raises:
        ProbeError: tensorboard is not installed.
    """
    try:
        import tensorboard  # noqa: F401 - only whether it imports
    except ImportError:
        raise ProbeError("--tensorboard needs the tensorboard package: "
                         "pip install 'landscape_probe[tensorboard]' (or pip install tensorboard).") from None


class RunLog:
    """The TensorBoard event files of one run (see the module docstring).

    Args:
        folder: where this run's event files go (``DIR/<run name>``).
        steps_per_epoch: steps in one epoch, to place the per-epoch records on the step axis.
    """

    def __init__(self, folder: Path | str, steps_per_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), flush_secs=10)  # visible within seconds while the run trains
        self.steps_per_epoch = steps_per_epoch
        self.written: dict[str, int] = {}

    def update(self, run: RunResult) -> None:
        """Write the entries of ``run.records`` (growing lists while it trains) not written yet."""
        records = run.records
        columns = {"layer_names": run.layer_names, "normalised_layer_names": run.normalised_layer_names}
        diagnostics = tuple(n for n in PER_DIAGNOSTIC if n != "diagnostic_steps")
        for group, names in (("step", PER_STEP), ("epoch", EPOCH_RECORDS), ("diagnostics", diagnostics)):
            for name in names:
                values = records.get(name) or []
                for i in range(self.written.get(name, 0), len(values)):
                    tag, step = f"{group}/{name}", self._step(group, i, records)
                    if name in PER_LAYER:
                        for layer, value in zip(columns[PER_LAYER[name]], values[i]):
                            self.writer.add_scalar(f"{tag}/{layer}", float(value), step)
                    else:
                        self.writer.add_scalar(tag, float(values[i]), step)
                self.written[name] = len(values)

    def close(self, run: RunResult) -> None:
        """Write what is left of ``run.records`` and close the event files."""
        self.update(run)
        self.writer.close()

    def _step(self, group: str, index: int, records: dict[str, Any]) -> int:
        if group == "epoch":
            return (index + 1) * self.steps_per_epoch
        return int(records["diagnostic_steps"][index]) if group == "diagnostics" else index
