"""A ``probe slice`` results file, written and read by iterating the declaration in :mod:`.result`.

Root attributes: :func:`~landscape_probe.hdf5.provenance` and what the API adds
(checkpoint format, architecture, data, split), ``kind = "slice"``, the
settings (the fields of :class:`~landscape_probe.slicing.config.SliceConfig`
but the seed, scales, device, batch size and memory budget, which are stored
elsewhere or not at all; ``loss`` and ``classification``), and the group attributes of the sweep
over all layers (``shape``, ``verdict``, ...). Root datasets: the quantities of
:class:`~landscape_probe.slicing.result.SliceResult` (``scales``,
``layer_names``) and of the sweep over all layers
(:class:`~landscape_probe.slicing.result.SliceSweep`). With per-layer sweeps,
the same sweep datasets and attributes for each layer alone live in the group
``/layers/<parameter name>``; for a ``transformers`` model, in ``/layers/<group name>`` for
each group of :mod:`landscape_probe.models.groups` (embeddings, a block's attention or MLP,
the head). Each such group's ``members`` attribute lists its parameters (JSON), and
``/layers`` its groups in order (``order``). Documented in ``docs/hdf5-format.md``.

Example:
    >>> result = read_slice("mlp16_digits_slice.h5")  # doctest: +SKIP
    >>> result.relative_gradient_change, result.layers["hidden.0.weight"].breakdown_scale  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.hdf5 import atomic_h5, open_results, plain_value, read_attrs
from landscape_probe.layout import quantities, read_quantities, write_quantities
from landscape_probe.slicing.config import SliceConfig
from landscape_probe.slicing.result import CALIBRATED, SliceResult, SliceSweep, group_attributes

if TYPE_CHECKING:
    import h5py

NOT_SETTINGS = ("seed", "scales", "device", "chunk_size", "memory_budget", "loss")
"""Fields of SliceConfig that are not root settings: provenance (seed, device), a dataset, not stored (the
chunk size, the memory budget), or ``loss``, which holds the loss used (the result's ``loss_name``)."""
SWEEP_ATTRIBUTES = group_attributes(SliceSweep)
LAYERS_GROUP = "layers"


def write_slice(path: Path | str, result: SliceResult, *, overwrite: bool) -> None:
    """Write ``result`` atomically to ``path``, provenance and settings on the root.

    Raises:
        ProbeError: when ``path`` exists without ``overwrite`` or cannot be written.
    """
    attrs = {**result.provenance, **_settings(result)}
    with atomic_h5(path, kind="slice", attrs=attrs, overwrite=overwrite) as h5:
        write_quantities(h5, result, result.loss_name)
        _write_sweep(h5, result.whole, result.loss_name)
        if result.layers or result.skipped_layers:
            group = h5.create_group(LAYERS_GROUP)
            group.attrs["description"] = "one sweep per layer (or group of layers), perturbing it alone"
            group.attrs["order"] = json.dumps(list(result.layers))
            if result.skipped_layers:
                group.attrs["skipped"] = json.dumps(result.skipped_layers)
            for name, sweep in result.layers.items():
                swept = group.create_group(name)
                swept.attrs["members"] = json.dumps(sweep.layer_names)
                _write_sweep(swept, sweep, result.loss_name)


def read_slice(path: Path | str) -> SliceResult:
    """Read a slice results file back into the :class:`SliceResult` that was written.

    Raises:
        ProbeError: when the file is missing, not ours, not of kind ``slice``, or incomplete.
    """
    with open_results(path) as h5:
        if h5.attrs["kind"] != "slice":
            raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not a slice.")
        attrs = read_attrs(h5)
        root = read_quantities(SliceResult, h5)
        _require(root, SliceResult, path, "/")
        scales = np.asarray(root["scales"], dtype=np.float64)
        layer_names = [str(name) for name in root["layer_names"]]
        swept = h5[LAYERS_GROUP] if LAYERS_GROUP in h5 else {}
        order = json.loads(swept.attrs["order"]) if "order" in getattr(swept, "attrs", {}) else layer_names
        layers = {name: _read_sweep(swept[name], json.loads(swept[name].attrs.get("members", json.dumps([name]))), path)
                  for name in order if name in swept}
        skipped = json.loads(swept.attrs["skipped"]) if "skipped" in getattr(swept, "attrs", {}) else {}
        whole = _read_sweep(h5, layer_names, path)
    settings = {f.name for f in fields(SliceConfig) if f.name not in NOT_SETTINGS} | {"loss", "classification"}
    provenance = {k: v for k, v in attrs.items() if k not in settings | set(SWEEP_ATTRIBUTES) | {"kind"}}
    return SliceResult(
        scales=scales,
        layer_names=layer_names,
        layer_sizes=None if root.get("layer_sizes") is None else np.asarray(root["layer_sizes"], dtype=np.int64),
        step_over_breakdown=root.get("step_over_breakdown"),
        whole=whole,
        layers=layers,
        skipped_layers=skipped,
        config=_config(attrs, scales),
        loss_name=str(attrs["loss"]),
        classification=bool(attrs["classification"]),
        provenance=provenance,
        path=Path(path),
    )


def _settings(result: SliceResult) -> dict[str, Any]:
    config = result.config
    settings: dict[str, Any] = {
        f.name: getattr(config, f.name) for f in fields(SliceConfig) if f.name not in NOT_SETTINGS
    }
    settings.update(scaling=config.resolved_scaling, select=config.select or "")
    return {**settings, "loss": result.loss_name, "classification": result.classification}


def _config(attrs: dict[str, Any], scales: np.ndarray) -> SliceConfig:
    """The settings read back; ``device`` is the one used, ``chunk_size`` the default (not stored)."""
    stored = {f.name: attrs[f.name] for f in fields(SliceConfig) if f.name not in NOT_SETTINGS and f.name in attrs}
    stored["select"] = stored.get("select") or None
    return SliceConfig(
        **stored,
        scales=tuple(float(t) for t in scales[scales > 0]),
        seed=int(attrs.get("seed", 0)),
        device=str(attrs.get("device", "cpu")),
        loss=str(attrs["loss"]),
    )


def _write_sweep(group: h5py.Group, sweep: SliceSweep, loss_name: str) -> None:
    extra = {
        name: {
            "calibration_constant": sweep.calibration_constants[name],
            "first_divergence": sweep.first_divergence[name],
        }
        for name in CALIBRATED
    }
    write_quantities(group, sweep, loss_name, **extra)
    for name in SWEEP_ATTRIBUTES:
        group.attrs[name] = getattr(sweep, name)


def _read_sweep(group: h5py.Group, layer_names: list[str], path: Path | str) -> SliceSweep:
    values = read_quantities(SliceSweep, group)
    _require(values, SliceSweep, path, group.name)
    return SliceSweep(
        **values,
        **{name: _attribute(group, name) for name in SWEEP_ATTRIBUTES},
        layer_names=layer_names,
        calibration_constants={name: float(group[name].attrs["calibration_constant"]) for name in CALIBRATED},
        first_divergence={name: float(group[name].attrs["first_divergence"]) for name in CALIBRATED},
    )


def _attribute(group: h5py.Group, name: str) -> Any:
    value = plain_value(group.attrs.get(name, ""))
    return int(value) if _ANNOTATIONS[name] == "int" else str(value)


_ANNOTATIONS = {f.name: f.type for f in fields(SliceSweep)}


def _require(values: dict[str, Any], cls: type, path: Path | str, where: str) -> None:
    missing = [q.name for q in quantities(cls) if q.name not in values]
    if missing:
        raise ProbeError(f"'{path}' is not a complete slice results file: {where} lacks {', '.join(missing)}.")
