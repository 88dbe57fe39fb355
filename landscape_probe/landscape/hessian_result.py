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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from landscape_probe.errors import ProbeError
from landscape_probe.landscape.result_file import ResultFile
from landscape_probe.layout import LOSS, quantity

if TYPE_CHECKING:
    import pandas

SETTINGS = ("top_k", "iterations", "tolerance", "trace_samples", "trace_tolerance", "density_runs", "density_steps",
            "per_layer", "select", "include_1d", "split", "dtype", "probe_size", "seed")


@dataclass(kw_only=True)
class HessianResult(ResultFile):
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
    gradient_norm: float = quantity("||∇L(W)|| over the selected layers", units=LOSS, shape="()")
    hessian_vector_products: int = quantity("Hessian-vector products spent, all estimates together", units="",
                                            shape="()")
    settings: dict[str, Any]
    loss_name: str
    classification: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    KIND: ClassVar[str] = "hessian"
    NOUN: ClassVar[str] = "a Hessian spectrum"
    SETTINGS: ClassVar[tuple[str, ...]] = SETTINGS

    @classmethod
    def _typed(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {"hessian_vector_products": int(values["hessian_vector_products"])}

    @staticmethod
    def _drawer() -> Callable[[Path, Path, tuple[str, ...]], list[Path]]:
        from landscape_probe.landscape.hessian_report import draw_hessian

        return draw_hessian

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
