"""Each results format declared once: a measured quantity's name, meaning, units and shape.

A results class (a dataclass) declares its stored quantities as fields made by
:func:`quantity`. Everything else derives from those fields: the writer
(:func:`write_quantities`), the reader (:func:`read_quantities`), the printed
summaries and plots (which use the attribute names), and the tables of
``docs/hdf5-format.md``, which :func:`render_document` regenerates between
``<!-- quantities: MODULE:CLASS -->`` and ``<!-- end quantities -->`` markers
(a test checks that the document is up to date; ``python -m
landscape_probe.layout docs/hdf5-format.md`` rewrites it).

Units are written as they are stored, except :data:`LOSS`, which becomes the
loss's own units when written: nats for cross-entropy, squared target units
for MSE (:func:`loss_units`).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Curve:
    ...     loss: list = quantity("mean loss at each point", units=LOSS, shape="(P,)")
    ...     accuracy: list | None = quantity("fraction correct", units="1", shape="(P,)", optional=True)
    >>> [q.name for q in quantities(Curve)]
    ['loss', 'accuracy']
    >>> print(markdown_table(Curve).splitlines()[2])
    | `loss` | (P,) | loss | mean loss at each point |
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import h5py

LOSS = "loss"
"""Units placeholder: the loss's units (nats for cross-entropy, squared target units for MSE)."""


@dataclass(frozen=True)
class Quantity:
    """One stored quantity: its dataset name, what it means, its units and its shape."""

    name: str
    meaning: str
    units: str
    shape: str
    optional: bool


def quantity(meaning: str, *, units: str, shape: str, optional: bool = False, default: Any = None) -> Any:
    """A dataclass field that is stored as an HDF5 dataset of the same name.

    Args:
        meaning: one line for the dataset's ``description`` attribute and the document.
        units: ``"1"`` for dimensionless, :data:`LOSS` for the loss's units, ``""`` for indices and names.
        shape: the shape in the document's letters, e.g. ``"(P, L)"``; ``"()"`` for a scalar.
        optional: the value may be None (e.g. accuracy of a regression), and is then not written.
        default: the field's default when ``optional`` (None).
    """
    metadata = {"quantity": (meaning, units, shape, optional)}
    if optional:
        return field(default=default, metadata=metadata)
    return field(metadata=metadata)


def quantities(cls: type) -> list[Quantity]:
    """The stored quantities a results class declares, in declaration order."""
    return [Quantity(f.name, *f.metadata["quantity"]) for f in fields(cls) if "quantity" in f.metadata]


def loss_units(loss_name: str) -> str:
    """The units of a loss: nats for cross-entropy (of classes or of tokens), squared target units for MSE."""
    return "squared target units" if loss_name == "mse" else "nats"


def write_quantities(group: h5py.Group, obj: Any, loss_name: str, **dataset_attrs: dict[str, Any]) -> None:
    """Write every declared quantity of ``obj`` (a results dataclass) as a dataset of ``group``.

    Args:
        group: the HDF5 group to write into.
        obj: an instance of a class that declares its quantities with :func:`quantity`.
        loss_name: resolves the :data:`LOSS` units.
        dataset_attrs: per dataset name, further attributes to store with it.
    """
    import numpy as np

    from landscape_probe.hdf5 import write_dataset

    for q in quantities(type(obj)):
        value = getattr(obj, q.name)
        if value is None:
            continue
        units = loss_units(loss_name) if q.units == LOSS else q.units
        if not (isinstance(value, (list, tuple)) and value and isinstance(value[0], str)):
            value = np.asarray(value)
        write_dataset(group, q.name, value, description=q.meaning, units=units, **dataset_attrs.get(q.name, {}))


def read_quantities(cls: type, group: h5py.Group) -> dict[str, Any]:
    """The declared quantities of ``cls`` found in ``group``: numpy arrays, Python floats for scalars.

    Optional quantities missing from the file are None; a missing required one
    is left out, for the caller to complain about.
    """
    from landscape_probe.hdf5 import read_group

    arrays = read_group(group)
    values: dict[str, Any] = {}
    for q in quantities(cls):
        if q.name in arrays:
            array = arrays[q.name]
            values[q.name] = array.item() if q.shape == "()" else array
        elif q.optional:
            values[q.name] = None
    return values


def markdown_table(cls: type) -> str:
    """The document's table of a results class: dataset, shape, units, meaning."""
    rows = ["| dataset | shape | units | meaning |", "|---|---|---|---|"]
    for q in quantities(cls):
        meaning = q.meaning.replace("|", "\\|") + (" (optional)" if q.optional else "")
        rows.append(f"| `{q.name}` | {q.shape} | {q.units} | {meaning} |")
    return "\n".join(rows)


_BLOCK = re.compile(r"(<!-- quantities: ([\w.]+):(\w+) -->\n)(.*?)(<!-- end quantities -->)", re.DOTALL)


def render_document(text: str) -> str:
    """``text`` with every marked table regenerated from its results class."""

    def table(match: re.Match) -> str:
        cls = getattr(importlib.import_module(match.group(2)), match.group(3))
        return f"{match.group(1)}{markdown_table(cls)}\n{match.group(5)}"

    return _BLOCK.sub(table, text)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(render_document(path.read_text()))
