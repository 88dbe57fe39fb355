"""Learning rates a user can act on, from the measured trust region (``probe advise``, ``lp.advise``).

A slice along the gradient with relative scaling moves every layer by the
same relative step κ = t: W_l − t·‖W_l‖/‖g_l‖·g_l. With ``--layers`` it also
moves each layer alone. At a threshold θ (default 0.5) on the relative
gradient change ‖g(t) − g(0)‖/‖g(0)‖ (:func:`~landscape_probe.slicing.trust.breakdown_scale`,
interpolated in log-log, exact for a power law):

- **t\\*** — all layers together: the largest relative step per layer before
  the gradient has changed by θ;
- **κ_l** — layer l alone (the others fixed): the same for that layer, on its
  own gradient.

Turned into learning rates, each with its caveat:

(a) **Fromage / LARS**: both step every layer by a relative amount lr
    (Fromage ΔW_l = −lr·‖W_l‖/‖g_l‖·g_l/√(1 + lr²); LARS with trust
    coefficient 1 and no momentum the same without the root), so lr = t\\*.
(b) **SGD, per layer**: η_l = κ_l·‖W_l‖/‖g_l‖ takes layer l by exactly κ_l
    (ΔW_l = −η_l·g_l has ‖ΔW_l‖/‖W_l‖ = η_l‖g_l‖/‖W_l‖ = κ_l); moving every
    layer at once compounds, so the rates that keep *all* layers within
    reach together are η_l\\* = t\\*·‖W_l‖/‖g_l‖, and one SGD rate for the whole
    network is min_l η_l\\* (no layer then moves by more than t\\*).
(c) **Adam**: under its usual approximation update ≈ lr·sign(g), layer l moves
    by lr·√n_l/‖W_l‖ (n_l entries), so lr = t\\*·min_l ‖W_l‖/√n_l.

Example:
    >>> import numpy as np
    >>> advice = Advice(threshold=0.5, together=0.01, layer_names=["a", "b"], alone=np.array([0.04, 0.02]),
    ...                 weight_norms=np.array([2.0, 8.0]), gradient_norms=np.array([0.5, 4.0]),
    ...                 sizes=np.array([16, 64]))
    >>> advice.fromage_lr, advice.sgd_rates_alone.tolist(), round(advice.sgd_lr, 6), advice.adam_lr
    (0.01, [0.16, 0.04], 0.02, 0.005)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from landscape_probe.errors import ProbeError

if TYPE_CHECKING:
    from landscape_probe.slicing.result import SliceResult

DEFAULT_THRESHOLD = 0.5
CAVEATS = {
    "fromage": "Fromage and LARS step every layer by the same relative amount lr, as the slice did; momentum "
               "(LARS) lengthens the step by up to 1/(1 − β).",
    "sgd": "Each η_l alone moves its layer to its own breakdown with the others fixed; all layers at once "
           "compound, so use the rates for all layers together (or the single SGD rate, their minimum).",
    "adam": "Adam's step is lr·m̂/(√v̂ + ε), close to lr·sign(g) in its first steps and with little noise; later "
            "it is usually shorter, so this rate is on the cautious side of what Adam tolerates.",
    "local": "All rates hold at these weights and this probe set: the trust region moves as training does.",
}


@dataclass(frozen=True)
class Advice:
    """Breakdown scales at a threshold, and the learning rates that step up to them (see the module docstring).

    Attributes:
        threshold: θ on the relative gradient change.
        together: t*, all layers moved together (NaN: θ not reached up to ``largest_scale``).
        layer_names: the layers, in order.
        alone: κ_l, each layer moved alone (NaN where not reached).
        weight_norms, gradient_norms: ‖W_l‖_F and ‖g_l‖ at W.
        sizes: n_l, entries of each layer (None when unknown: no Adam rate).
        largest_scale: the largest relative step the slice measured.
    """

    threshold: float
    together: float
    layer_names: list[str]
    alone: np.ndarray
    weight_norms: np.ndarray
    gradient_norms: np.ndarray
    sizes: np.ndarray | None = None
    largest_scale: float = math.nan

    @property
    def fromage_lr(self) -> float:
        """(a) the learning rate of Fromage and LARS: t*."""
        return float(self.together)

    @property
    def sgd_rates_alone(self) -> np.ndarray:
        """(b) η_l = κ_l·‖W_l‖/‖g_l‖, each layer to its own breakdown."""
        return self.alone * self.weight_norms / self.gradient_norms

    @property
    def sgd_rates_together(self) -> np.ndarray:
        """(b) η_l* = t*·‖W_l‖/‖g_l‖, every layer at once."""
        return self.together * self.weight_norms / self.gradient_norms

    @property
    def sgd_lr(self) -> float:
        """(b) one SGD rate for the network: min_l η_l* (NaN when t* is)."""
        return float(np.min(self.sgd_rates_together))

    @property
    def adam_lr(self) -> float:
        """(c) Adam's rate under update ≈ lr·sign(g): t*·min_l ‖W_l‖/√n_l (NaN without sizes)."""
        if self.sizes is None:
            return math.nan
        return float(self.together * np.min(self.weight_norms / np.sqrt(self.sizes)))

    def lr_for(self, optimizer: str) -> float:
        """The advised learning rate for a row of the optimiser table (``--lr auto``).

        Raises:
            ProbeError: for an optimiser no rule covers, or a threshold never reached.
        """
        rule = LR_RULES.get(optimizer)
        if rule is None:
            raise ProbeError(f"--lr auto has no rule for '{optimizer}'; it covers {', '.join(sorted(LR_RULES))}. "
                             "Give a number.")
        value = getattr(self, rule)
        if not math.isfinite(value):
            raise ProbeError(f"The relative gradient change never reached {self.threshold} up to a relative step of "
                             f"{self.largest_scale:g}, so --lr auto has no rate; give a number.")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (JSON-ready): the scales, the rates, and per layer κ_l, η_l, η_l*, norms and sizes."""
        def number(value: float) -> float | None:
            return float(value) if math.isfinite(value) else None

        layers = {}
        for i, name in enumerate(self.layer_names):
            layers[name] = {"relative_step_alone": number(self.alone[i]),
                            "sgd_lr_alone": number(self.sgd_rates_alone[i]),
                            "sgd_lr_together": number(self.sgd_rates_together[i]),
                            "weight_norm": float(self.weight_norms[i]), "gradient_norm": float(self.gradient_norms[i]),
                            "size": int(self.sizes[i]) if self.sizes is not None else None}
        return {"threshold": self.threshold, "relative_step_together": number(self.together),
                "fromage_lr": number(self.fromage_lr), "lars_lr": number(self.fromage_lr),
                "sgd_lr": number(self.sgd_lr), "adam_lr": number(self.adam_lr),
                "largest_scale": number(self.largest_scale), "layers": layers, "caveats": dict(CAVEATS)}

    def summary(self, width: int = 100) -> str:
        """The advice as ``probe advise`` prints it, without colour."""
        from landscape_probe.slicing.advice_report import advice_text

        return advice_text(self, width=width)


LR_RULES = {"fromage": "fromage_lr", "lars": "fromage_lr", "sgd": "sgd_lr", "momentum": "sgd_lr",
            "nesterov": "sgd_lr", "adam": "adam_lr", "adamw": "adam_lr", "lion": "adam_lr"}
"""Which advised rate ``--lr auto`` gives each optimiser of the table (those the three rules cover)."""


def advice_from_slice(result: SliceResult, threshold: float = DEFAULT_THRESHOLD) -> Advice:
    """The advice a gradient slice with relative scaling, Frobenius norm and ``--layers`` gives at ``threshold``.

    Each layer's ‖W_l‖ is its sweep's ``unit_step_norm`` (relative scaling: ‖u_l‖ = ‖W_l‖), ‖g_l‖ its
    ``gradient_norm``, n_l the result's ``layer_sizes`` (None in older files: no Adam rate).

    Raises:
        ProbeError: for another direction, scaling or norm, no ``--layers``, or a threshold that is not positive.
    """
    from landscape_probe.slicing.trust import breakdown_scale

    config = result.config
    if (config.direction, config.resolved_scaling, config.norm) != ("gradient", "relative", "frobenius"):
        raise ProbeError("Advice needs a slice along the gradient with relative scaling and the Frobenius norm, "
                         f"not {config.direction} / {config.resolved_scaling} / {config.norm}.")
    if not result.layers:
        raise ProbeError("Advice needs every layer's own sweep: slice with --layers.")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ProbeError(f"The threshold must be a positive number, not {threshold}.")
    if not set(result.layers) <= set(result.layer_names):
        raise ProbeError("Advice needs one sweep per layer, and this slice's sweeps are of groups of layers.")
    kept = [i for i, n in enumerate(result.layer_names) if n in result.layers]  # a zero gradient: no sweep
    names = [result.layer_names[i] for i in kept]
    scales = np.asarray(result.scales, dtype=np.float64)
    alone = [breakdown_scale(scales, result.layers[n].relative_gradient_change, threshold) for n in names]
    return Advice(
        threshold=float(threshold),
        together=breakdown_scale(scales, result.whole.relative_gradient_change, threshold),
        layer_names=names, alone=np.array(alone, dtype=np.float64),
        weight_norms=np.array([result.layers[n].unit_step_norm for n in names], dtype=np.float64),
        gradient_norms=np.array([result.layers[n].gradient_norm for n in names], dtype=np.float64),
        sizes=None if result.layer_sizes is None else np.asarray(result.layer_sizes, dtype=np.int64)[kept],
        largest_scale=float(np.max(scales)),
    )


def advise(model: Any, data: Any = None, *, threshold: float = DEFAULT_THRESHOLD, min_scale: float = 1e-6,
           max_scale: float = 1.0, points: int = 25, **slice_options: Any) -> Advice:
    """Slice ``model`` along the gradient with ``--layers`` and turn the breakdown scales into learning rates.

    Args:
        model, data: as ``lp.slice`` (a checkpoint path or a module; data as there).
        threshold: θ on the relative gradient change (default 0.5).
        min_scale, max_scale, points: the log-spaced relative steps measured.
        slice_options: any other keyword of ``lp.slice`` (``probe_size``, ``device``, ``select``, ...),
            except those that fix the slice the advice needs (direction, scaling, norm, layers).

    Raises:
        ProbeError: for bad settings or input, as ``lp.slice``.
    """
    from landscape_probe.slicing.api import slice as slice_model

    fixed = {"direction", "scaling", "norm", "layers", "scales", "two_sided"} & set(slice_options)
    if fixed:
        raise ProbeError(f"Advice slices along the gradient with relative scaling; it takes no {sorted(fixed)[0]}.")
    result = slice_model(model, data, direction="gradient", scaling="relative", norm="frobenius", layers=True,
                         min_scale=min_scale, max_scale=max_scale, points=points, **slice_options)
    return advice_from_slice(result, threshold)
