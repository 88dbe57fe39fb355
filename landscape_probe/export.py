"""``probe export``: a results file as CSV tables or one JSON document, for R, spreadsheets and scripts.

Works on a results file of any kind, by walking its HDF5 groups, so it stays
true to whatever a file holds:

- **CSV** (one folder): for every group (``/`` is ``root``, ``/layers/fc1.weight``
  is ``layers__fc1.weight``), ``<group>.csv`` holds its 1-D datasets of the
  group's most common length as columns (``scales``, ``loss``, ... or ``step``,
  ``loss``, ``learning_rate``, ...); ``<group>__<dataset>.csv`` holds each 2-D
  dataset, its columns named after the group's (or the root's) ``layer_names``
  when the widths agree; every other dataset (scalars, 1-D of another length)
  goes to ``scalars.csv`` / its own file, and every attribute of every group and
  dataset to ``attributes.csv`` (columns ``group, dataset, name, value``).
- **JSON** (one file): ``{"attributes": {...}, "datasets": {name: {"values":
  ..., "units": ..., "description": ...}}, "groups": {name: {...}}}``, nested as
  the file is; NaN and infinities are written as ``null``.

Files are written atomically; existing ones are replaced only with ``overwrite``.

Example:
    >>> export_csv("mlp16_digits_slice.h5", "mlp16_csv")  # doctest: +SKIP
    [PosixPath('mlp16_csv/root.csv'), ...]
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landscape_probe.atomic import atomic_path
from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    import h5py
    import numpy as np

INDEX_COLUMNS = ("scales", "step", "epoch")
"""Datasets that index a table's rows: written as its first columns."""


def export_json(results: Path | str, output: Path | str, *, overwrite: bool = False) -> Path:
    """Write the whole results file as one JSON document; returns its path."""
    from landscape_probe.hdf5 import check_writable, open_results

    output = Path(output)
    check_writable(output, overwrite)
    with open_results(results) as h5:
        document = _group_json(h5)
    with atomic_path(output) as tmp:
        tmp.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    return output


def export_csv(results: Path | str, folder: Path | str, *, overwrite: bool = False) -> list[Path]:
    """Write the results file as CSV tables in ``folder`` (made if missing); returns the files written."""
    from landscape_probe.hdf5 import open_results

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ProbeError(f"'{folder}' is a file; --csv needs a folder.")
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
    attributes: list[list[Any]] = []
    scalars: list[list[Any]] = []
    with open_results(results) as h5:
        root_names = _names(h5)
        for path, group in _groups(h5):
            stem = "root" if path == "" else path.replace("/", "__")
            attributes += [[path or "/", "", key, _plain(value)] for key, value in group.attrs.items()]
            tables.update(_group_tables(group, stem, _names(group) or root_names, scalars, attributes, path))
    tables["attributes"] = (["group", "dataset", "name", "value"], attributes)
    if scalars:
        tables["scalars"] = (["group", "dataset", "value", "units"], scalars)
    targets = {folder / f"{stem}.csv": table for stem, table in tables.items()}
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise ProbeError(f"'{existing[0]}' already exists; pass --overwrite (overwrite=True in Python) to replace the exported files.")
    folder.mkdir(parents=True, exist_ok=True)
    for path, (header, rows) in targets.items():
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return list(targets)


def _group_tables(
    group: h5py.Group, stem: str, layer_names: list[str], scalars: list, attributes: list, path: str
) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The CSV tables of one group's datasets; scalars and attributes are appended to the shared lists."""
    import h5py

    datasets = {name: item for name, item in group.items() if isinstance(item, h5py.Dataset)}
    arrays = {name: _array(item) for name, item in datasets.items()}
    lengths = Counter(len(a) for a in arrays.values() if a.ndim == 1)
    common = lengths.most_common(1)[0][0] if lengths else None
    columns = [name for name, a in arrays.items() if a.ndim == 1 and len(a) == common]
    columns.sort(key=lambda name: name not in INDEX_COLUMNS)
    tables = {}
    if columns:
        tables[stem] = (columns, [[_plain(arrays[c][i]) for c in columns] for i in range(common)])
    for name, array in arrays.items():
        units = str(_plain(datasets[name].attrs.get("units", "")))
        attributes += [[path or "/", name, key, _plain(value)] for key, value in datasets[name].attrs.items()]
        if array.ndim == 0:
            scalars.append([path or "/", name, _plain(array[()]), units])
        elif array.ndim == 2:
            width = array.shape[1]
            header = layer_names if len(layer_names) == width else [f"{name}[{j}]" for j in range(width)]
            tables[f"{stem}__{name}"] = (list(header), [[_plain(v) for v in row] for row in array])
        elif name not in columns:
            flat = array.reshape(len(array), -1) if array.ndim > 2 else array.reshape(-1, 1)
            tables[f"{stem}__{name}"] = ([f"{name}[{j}]" for j in range(flat.shape[1])],
                                         [[_plain(v) for v in row] for row in flat])
    return tables


def _groups(h5: h5py.File) -> list[tuple[str, h5py.Group]]:
    """Every group of the file, the root first, as (path without the leading '/', group)."""
    import h5py

    found = [("", h5)]
    h5.visititems(lambda name, item: found.append((name, item)) if isinstance(item, h5py.Group) else None)
    return found


def _names(group: h5py.Group) -> list[str]:
    if "layer_names" not in group:
        return []
    return [str(name) for name in _array(group["layer_names"])]


def _group_json(group: h5py.Group) -> dict[str, Any]:
    import h5py

    document: dict[str, Any] = {"attributes": {k: _plain(v) for k, v in group.attrs.items()}, "datasets": {}}
    groups = {}
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            groups[name] = _group_json(item)
        else:
            entry = {"values": _plain(_array(item))}
            entry |= {key: _plain(value) for key, value in item.attrs.items()}
            document["datasets"][name] = entry
    if groups:
        document["groups"] = groups
    return document


def _array(dataset: h5py.Dataset) -> np.ndarray:
    import h5py
    import numpy as np

    return np.asarray(dataset.asstr()[()] if h5py.check_string_dtype(dataset.dtype) else dataset[()])


def _plain(value: Any) -> Any:
    """A JSON- and CSV-friendly Python value: lists for arrays, None for NaN and infinities."""
    import numpy as np

    from landscape_probe.hdf5 import plain_value

    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    value = plain_value(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
