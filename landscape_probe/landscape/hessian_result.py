"""A Hessian spectrum's results, declared once: these fields are the ``probe hessian`` file format.

H = ∇²L(W) is the Hessian of the mean probe-set loss over the selected layers
(``layer_names``, flattened in that order, each row-major: ``layer_sizes``
entries each; the layout of ``params.flatten``). The top-k eigenpairs come from
Lanczos, the trace from Hutchinson's estimator, the density from stochastic
Lanczos quadrature (:mod:`landscape_probe.curvature.spectrum`,
:mod:`landscape_probe.curvature.trace`). Eigenvalues are largest first (algebraic);
an eigenvector's sign is arbitrary. ``eigenvectors[K-1]`` is the direction a
later ``--direction hessian:K`` reads. A quadrature run that ended early (its
Krylov space closed) pads its row of ``density_nodes`` with NaN and of
``density_weights`` with 0. ``layer_*`` hold every layer's own block H_ll
(``per_layer`` only), NaN past a layer's size.

Root attributes: :func:`~landscape_probe.hdf5.provenance`, ``kind = "hessian"``,
``architecture``, ``data``, and the settings ``top_k``, ``iterations``,
``tolerance``, ``trace_samples``, ``trace_tolerance``, ``density_runs``,
``density_steps``, ``per_layer``, ``select``, ``include_1d``, ``split``,
``dtype``, ``probe_size``, ``seed``, plus ``loss`` and ``classification``.

Example:
    >>> result = HessianResult.load("model_hessian.h5")  # doctest: +SKIP
    >>> result.eigenvalues[0], result.trace, result.trace_standard_error  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.layout import LOSS, quantities, quantity

if TYPE_CHECKING:
    import pandas

SETTINGS = ("top_k", "iterations", "tolerance", "trace_samples", "trace_tolerance", "density_runs", "density_steps",
            "per_layer", "select", "include_1d", "split", "dtype", "probe_size", "seed")


@dataclass(kw_only=True)
class HessianResult:
    """The Hessian's top eigenpairs, trace, spectral density and (optionally) per-layer blocks at W.

    Attributes:
        settings: the options that shaped the estimates (see the module docstring).
        loss_name, classification: the loss measured, and whether the targets are classes.
        provenance: the other root attributes (command line, checkpoint and its sha256, data, ...).
        path: the results file it was saved to or loaded from (None until then).
    """

    layer_names: list[str] = quantity("the parameters whose Hessian is taken, in flattening order", units="",
                                      shape="(L,)")
    layer_sizes: np.ndarray = quantity("entries of each layer in the flat vectors", units="", shape="(L,)")
    eigenvalues: np.ndarray = quantity("the K largest Hessian eigenvalues (Ritz values), largest first",
                                       units=LOSS, shape="(K,)")
    eigenvalue_residuals: np.ndarray = quantity(
        "||H v − λ v|| of each Ritz pair: some eigenvalue lies within it", units=LOSS, shape="(K,)")
    eigenvectors: np.ndarray = quantity("unit eigenvectors v (rows) over the flattened layers; sign arbitrary",
                                        units="1", shape="(K, P)")
    trace: float = quantity("Hutchinson's estimate of tr H: the mean of zᵀ H z over Rademacher z", units=LOSS,
                            shape="()")
    trace_standard_error: float = quantity("the trace estimate's standard error, s / √S", units=LOSS, shape="()")
    trace_samples: np.ndarray = quantity("each sample zᵀ H z", units=LOSS, shape="(S,)")
    density_nodes: np.ndarray = quantity("per quadrature run, the Ritz values θ_j (NaN past the run's end)",
                                         units=LOSS, shape="(R, M)")
    density_weights: np.ndarray = quantity("per quadrature run, the weights τ_j (squared first components)",
                                           units="1", shape="(R, M)")
    density_grid: np.ndarray = quantity("eigenvalues t at which the smoothed density is given", units=LOSS,
                                        shape="(G,)")
    density: np.ndarray = quantity("the density (1/R) Σ τ_j N(t; θ_j, σ²), which integrates to about 1",
                                   units="1/loss", shape="(G,)")
    density_width: float = quantity("σ, the width of each node's Gaussian", units=LOSS, shape="()")
    layer_eigenvalues: np.ndarray | None = quantity(
        "the K largest eigenvalues of each layer's block H_ll (per layer only)", units=LOSS, shape="(L, K)",
        optional=True)
    layer_traces: np.ndarray | None = quantity("Hutchinson's estimate of tr H_ll (per layer only)", units=LOSS,
                                               shape="(L,)", optional=True)
    layer_trace_standard_errors: np.ndarray | None = quantity(
        "standard error of each layer's trace estimate (per layer only)", units=LOSS, shape="(L,)", optional=True)
    loss_at_point: float = quantity("mean probe-set loss at W", units=LOSS, shape="()")
    gradient_norm: float = quantity("||∇L(W)|| over the selected layers", units="1", shape="()")
    hessian_vector_products: int = quantity("Hessian-vector products spent, all estimates together", units="",
                                            shape="()")
    settings: dict[str, Any]
    loss_name: str
    classification: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | str) -> HessianResult:
        """Read a ``probe hessian`` results file.

        Raises:
            ProbeError: when the file is missing, not ours, not a Hessian spectrum, or lacks a dataset.
        """
        from landscape_probe.hdf5 import open_results, read_attrs
        from landscape_probe.layout import read_quantities

        with open_results(path) as h5:
            if h5.attrs["kind"] != "hessian":
                raise ProbeError(f"'{path}' holds {h5.attrs['kind']} results, not a Hessian spectrum.")
            attrs = read_attrs(h5)
            values = read_quantities(cls, h5)
        missing = [q.name for q in quantities(cls) if q.name not in values]
        if missing:
            raise ProbeError(f"'{path}' is not a complete hessian results file: it lacks {', '.join(missing)}.")
        values["layer_names"] = [str(name) for name in values["layer_names"]]
        values["hessian_vector_products"] = int(values["hessian_vector_products"])
        known = {*SETTINGS, "loss", "classification", "kind"}
        return cls(**values, settings={k: attrs[k] for k in SETTINGS if k in attrs}, loss_name=str(attrs["loss"]),
                   classification=bool(attrs["classification"]),
                   provenance={k: v for k, v in attrs.items() if k not in known}, path=Path(path))

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """Write the results file atomically (it appears whole or not at all); remembers ``path``.

        Raises:
            ProbeError: when ``path`` exists without ``overwrite``, or cannot be written.
        """
        from landscape_probe.hdf5 import atomic_h5
        from landscape_probe.layout import write_quantities

        attrs = {**self.provenance, **self.settings, "loss": self.loss_name, "classification": self.classification}
        with atomic_h5(path, kind="hessian", attrs=attrs, overwrite=overwrite) as h5:
            write_quantities(h5, self, self.loss_name)
        self.path = Path(path)
        return self.path

    def plot(self, folder: Path | str, formats: Sequence[str] = ("png",)) -> list[Path]:
        """Draw the figures into ``folder``, from the results file (a temporary one while unsaved)."""
        from landscape_probe.landscape.hessian_report import draw_hessian
        from landscape_probe.figures import parse_formats

        chosen = parse_formats(",".join(formats))
        if self.path is not None:
            return draw_hessian(self.path, Path(folder), chosen)
        with tempfile.TemporaryDirectory() as scratch:
            unsaved = HessianResult(**{**self.__dict__, "path": None}).save(Path(scratch) / "hessian.h5")
            return draw_hessian(unsaved, Path(folder), chosen)

    def summary(self, width: int = 100) -> str:
        """The text ``probe show`` prints for this result, without colour or markup."""
        from landscape_probe.landscape.hessian_report import hessian_text

        return hessian_text(self, width=width)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per layer (index ``layer``): its size, and with ``per_layer`` its top-k and trace ± error.

        The whole Hessian's eigenvalues, trace and its error are in ``attrs``.

        Raises:
            ProbeError: when pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ProbeError("to_pandas needs pandas; install it with 'pip install pandas'.") from None
        columns: dict[str, Any] = {"size": np.asarray(self.layer_sizes, dtype=np.int64)}
        if self.layer_eigenvalues is not None:
            for i in range(self.layer_eigenvalues.shape[1]):
                columns[f"eigenvalue_{i + 1}"] = self.layer_eigenvalues[:, i]
            columns["trace"] = self.layer_traces
            columns["trace_standard_error"] = self.layer_trace_standard_errors
        frame = pandas.DataFrame(columns, index=pandas.Index(self.layer_names, name="layer"))
        frame.attrs.update(eigenvalues=np.asarray(self.eigenvalues).tolist(), trace=self.trace,
                           trace_standard_error=self.trace_standard_error)
        return frame
