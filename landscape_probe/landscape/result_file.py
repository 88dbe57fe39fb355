"""What the landscape results classes share: reading, writing and drawing their HDF5 file.

Each class (:class:`~landscape_probe.landscape.interpolation.InterpolationResult`,
:class:`~landscape_probe.landscape.plane_result.PlaneResult`,
:class:`~landscape_probe.landscape.hessian_result.HessianResult`) is a dataclass
that declares its datasets with :func:`~landscape_probe.layout.quantity` and has
the fields ``settings``, ``loss_name``, ``classification``, ``provenance`` and
``path``. It names its ``KIND`` (the root attribute ``kind``), the ``SETTINGS``
stored as root attributes, any boolean fields stored as root attributes
(``ROOT_FLAGS``) and its figures' drawer; this base does the rest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from landscape_probe.errors import ProbeError
from landscape_probe.layout import quantities


class ResultFile:
    """``load``, ``save`` and ``plot`` for a landscape results dataclass (see the module docstring)."""

    KIND: ClassVar[str] = ""
    NOUN: ClassVar[str] = ""
    """How an error names the kind, e.g. "an interpolation"."""
    SETTINGS: ClassVar[tuple[str, ...]] = ()
    ROOT_FLAGS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def load(cls, path: Path | str) -> Any:
        """Read a results file of this kind.

        Raises:
            ProbeError: when the file is missing, not ours, of another kind, or lacks a dataset.
        """
        from landscape_probe.hdf5 import open_results, read_attrs
        from landscape_probe.layout import read_quantities

        with open_results(path) as h5:
            if h5.attrs["kind"] != cls.KIND:
                raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not {cls.NOUN}.")
            attrs = read_attrs(h5)
            values = read_quantities(cls, h5)
        missing = [q.name for q in quantities(cls) if q.name not in values]
        if missing:
            raise ProbeError(f"'{path}' is not a complete {cls.KIND} results file: it lacks {', '.join(missing)}.")
        values["layer_names"] = [str(name) for name in values["layer_names"]]
        values.update(cls._typed(values))
        known = {*cls.SETTINGS, *cls.ROOT_FLAGS, "loss", "classification", "kind"}
        return cls(**values, **{flag: bool(attrs[flag]) for flag in cls.ROOT_FLAGS},
                   settings={k: attrs[k] for k in cls.SETTINGS if k in attrs}, loss_name=str(attrs["loss"]),
                   classification=bool(attrs["classification"]),
                   provenance={k: v for k, v in attrs.items() if k not in known}, path=Path(path))

    @classmethod
    def _typed(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Datasets whose stored type is not the field's (a bool mask, an int count), converted."""
        return {}

    @staticmethod
    def _drawer() -> Callable[[Path, Path, tuple[str, ...]], list[Path]]:
        raise NotImplementedError

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write the results file atomically (it appears whole or not at all); remembers ``path``.

        Raises:
            ProbeError: when ``path`` exists without ``overwrite``, or cannot be written.
        """
        from landscape_probe.hdf5 import atomic_h5
        from landscape_probe.layout import write_quantities

        attrs = {**self.provenance, **self.settings, "loss": self.loss_name, "classification": self.classification,
                 **{flag: getattr(self, flag) for flag in self.ROOT_FLAGS}}
        with atomic_h5(path, kind=self.KIND, attrs=attrs, overwrite=overwrite) as h5:
            write_quantities(h5, self, self.loss_name)
        self.path = Path(path)
        return self.path

    def plot(self, folder: Path | str, formats: Sequence[str] = ("png",)) -> list[Path]:
        """Draw the figures into ``folder``, from the results file (a temporary one while unsaved)."""
        from landscape_probe.figures import parse_formats

        chosen, draw = parse_formats(",".join(formats)), self._drawer()
        if self.path is not None:
            return draw(self.path, Path(folder), chosen)
        with tempfile.TemporaryDirectory() as scratch:
            unsaved = type(self)(**{**self.__dict__, "path": None}).save(Path(scratch) / f"{self.KIND}.h5")
            return draw(unsaved, Path(folder), chosen)
