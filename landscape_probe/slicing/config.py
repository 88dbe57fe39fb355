"""The settings of a slice: a frozen :class:`SliceConfig`, checked in one place, and the scale grid.

Example:
    >>> config = SliceConfig(direction="checkpoint:other.pt", scales=log_scales(1.0, 6))
    >>> config.resolved_scaling, config.scales
    ('none', (1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landscape_probe.slicing import directions
from landscape_probe.slicing.batched_points import parse_bytes
from landscape_probe.errors import ProbeError
from landscape_probe.norms import NORMS

DIRECTIONS = ("gradient", "random", "eigenvector", "hessian", "checkpoint", "optimizer")
SCALINGS = (*directions.SCALINGS, "none")
MEASURES = ("gradient", "loss")


@dataclass(frozen=True)
class SliceConfig:
    """Everything that decides a slice, recorded in the results file.

    Attributes:
        direction: gradient, random, eigenvector, ``hessian:K`` / ``hessian:FILE.h5:K`` (the K-th Hessian
            eigenvector, :mod:`~landscape_probe.curvature.hessian_direction`), ``checkpoint:OTHER.pt``, or
            ``optimizer:NAME[:lr]`` (the update that optimiser would take from W,
            :mod:`~landscape_probe.slicing.optimizer_direction`).
        seed: seed of random directions, of Lanczos's start where the step cannot be it, and of the probe set.
        scaling: relative, global, filter or none (u = d). None picks ``none``
            for a checkpoint direction (t = 1 reaches the other checkpoint:
            linear interpolation) and an optimizer direction (t = 1 is the
            optimiser's actual step), and ``relative`` otherwise.
        norm: frobenius, spectral or neuron, for κ and the relative scaling.
        scales: the positive scales t, in increasing order.
        two_sided: also evaluate −t for every t.
        per_layer: repeat the sweep once per layer, perturbing it alone.
        select: glob(s) on parameter names restricting the perturbed layers.
        include_1d: also perturb biases and normalisation parameters.
        probe_size: examples in the probe set (used by whoever builds it).
        loss: the ``--loss`` asked for, or None for the data set's default.
        device: auto, cpu, cuda or cuda:N.
        dtype: float32 or float64: the model and probe set are cast to it.
        power_iterations: most Hessian-vector products for λ_max (Lanczos iterations; the name predates Lanczos).
        power_tolerance: relative error of λ_max, as Lanczos's stopping rule estimates it, at which it stops.
        chunk_size: most probe examples per forward and backward pass (``--chunk-size``): a larger
            probe set is taken in chunks and its mean loss and gradient accumulated,
            L = Σ_b (n_b / N) L_b, and λ_max's Hessian-vector products are taken chunk by chunk too
            (``slicing.chunked_hessian``): memory holds one chunk's activations, never the whole set's.
        fit_points: smallest positive scales used to calibrate the predictions.
        measure: ``gradient`` (every point's gradient, λ_max at W and every prediction) or ``loss``
            (forward passes only: loss, accuracy, function change and KL; the gradient change, λ_max and
            what needs them are NaN; :mod:`~landscape_probe.slicing.line`).
        points_per_pass: ``auto`` or N ≥ 1: points evaluated together in one vmapped pass per chunk
            (:mod:`~landscape_probe.slicing.batched_points`); ``auto`` takes as many as ``memory_budget``
            holds (at most 32); 1 is one point at a time. A results file records the number the sweep over
            all layers used.
        memory_budget: the memory ``auto`` may give the points of one pass, e.g. ``512MiB``, ``2GiB``.
    """

    direction: str = "gradient"
    seed: int = 0
    scaling: str | None = None
    norm: str = "frobenius"
    scales: tuple[float, ...] = (0.001, 0.01, 0.1)
    two_sided: bool = False
    per_layer: bool = False
    select: str | None = None
    include_1d: bool = False
    probe_size: int = 512
    loss: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    power_iterations: int = 50
    power_tolerance: float = 1e-4
    chunk_size: int = 1024
    fit_points: int = 3
    measure: str = "gradient"
    points_per_pass: int | str = "auto"
    memory_budget: str = "1GiB"

    @property
    def direction_kind(self) -> str:
        """``checkpoint`` for ``checkpoint:OTHER.pt``, ``optimizer`` for ``optimizer:NAME[:lr]``, else the direction."""
        return self.direction.split(":", 1)[0]

    @property
    def resolved_scaling(self) -> str:
        """The scaling actually used (see ``scaling``)."""
        if self.scaling is not None:
            return self.scaling
        return "none" if self.direction_kind in ("checkpoint", "optimizer") else "relative"

    @property
    def all_scales(self) -> np.ndarray:
        """The evaluated scales: ``−t`` (largest first) then ``t`` when two-sided, else ``t``."""
        positive = np.asarray(self.scales, dtype=np.float64)
        return np.concatenate([-positive[::-1], positive]) if self.two_sided else positive

    def check(self) -> None:
        """Refuse values that cannot make a slice, with one sentence.

        Raises:
            ProbeError: for an unknown direction, scaling or norm, bad scales, or
                fewer than one Hessian-vector product for λ_max.
        """
        if self.direction_kind not in DIRECTIONS:
            raise ProbeError(
                f"Unknown direction '{self.direction}'; use gradient, random, eigenvector, hessian:K, "
                "hessian:FILE.h5:K, checkpoint:OTHER.pt or optimizer:NAME[:lr]."
            )
        if self.direction_kind == "hessian":
            from landscape_probe.curvature.hessian_direction import parse_hessian_direction

            parse_hessian_direction(self.direction)
        if self.direction_kind == "optimizer":
            from landscape_probe.slicing.optimizer_direction import parse_optimizer_direction

            parse_optimizer_direction(self.direction)
        if self.direction_kind == "checkpoint" and not self.direction.partition(":")[2]:
            raise ProbeError("A checkpoint direction needs a file: write --direction checkpoint:OTHER.pt.")
        if self.measure not in MEASURES:
            raise ProbeError(f"Unknown measure '{self.measure}'; use gradient or loss.")
        if self.measure == "loss" and self.per_layer:
            raise ProbeError("--layers needs --measure gradient: the per-layer sweeps compare gradient changes.")
        if self.resolved_scaling not in SCALINGS:
            raise ProbeError(f"Unknown scaling '{self.scaling}'; use one of {', '.join(SCALINGS)}.")
        if self.norm not in NORMS:
            raise ProbeError(f"Unknown norm '{self.norm}'; use one of {', '.join(NORMS)}.")
        if self.dtype not in ("float32", "float64"):
            raise ProbeError(f"Unknown dtype '{self.dtype}'; use float32 or float64.")
        if self.power_iterations < 1:
            raise ProbeError(f"--power-iterations must be at least 1 (λ_max needs a Hessian-vector product), "
                             f"not {self.power_iterations}.")
        if not 0 < self.power_tolerance < 1:
            raise ProbeError(f"The λ_max tolerance must lie between 0 and 1, not {self.power_tolerance}.")
        if self.chunk_size < 1:
            raise ProbeError(f"--chunk-size must be at least 1 probe example, not {self.chunk_size}.")
        if self.probe_size is not None and self.probe_size < 1:
            raise ProbeError(f"--probe-size must be at least 1, not {self.probe_size}.")
        if self.points_per_pass != "auto" and not (isinstance(self.points_per_pass, (int, np.integer))
                                                    and self.points_per_pass >= 1):
            raise ProbeError(f"--points-per-pass must be auto or a whole number of at least 1, "
                             f"not '{self.points_per_pass}'.")
        parse_bytes(self.memory_budget)  # refuses a size it cannot read
        scales = np.asarray(self.scales, dtype=np.float64)
        if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise ProbeError("Scales must be positive finite numbers, e.g. --scales 0.001,0.01,0.1.")
        if np.any(np.diff(scales) <= 0):
            raise ProbeError("Scales must be distinct and in increasing order.")


DEFAULT_DECADES_FACTOR = 1e-5


def log_scales(max_scale: float, points: int, min_scale: float | None = None) -> tuple[float, ...]:
    """``points`` scales log-spaced from ``min_scale`` to ``max_scale``, both included.

    The default ``min_scale`` is ``max_scale / 10**5``: five decades, so that a
    deep network's linear regime (often below t = 10⁻³) is on the axis and the
    calibration on the smallest scales sees it.

    Raises:
        ProbeError: unless ``0 < min_scale < max_scale`` and ``points >= 2``.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)):
        raise ProbeError(f"--points (points in Python) must be a whole number, not {points!r}.")
    low = max_scale * DEFAULT_DECADES_FACTOR if min_scale is None else min_scale
    if not (0 < low < max_scale) or points < 2:
        raise ProbeError("--max-scale must be positive and above --min-scale, and --points at least 2.")
    return tuple(float(t) for t in np.geomspace(low, max_scale, points))
