"""landscape_probe: how far can a gradient step be trusted on a real PyTorch model?

Measures the relative change of a network's function and gradient along weight
perturbations and sets it beside deep relative trust (Bernstein et al., 2020)
and Euclidean (gradient-Lipschitz) trust. Every ``probe`` command is one call
of this API (see ``docs/python-api.md``)::

    import landscape_probe as lp
    result = lp.slice("model.pt", "digits", layers=True)
    result.relative_gradient_change, result.drt_prediction, result.layers["fc1.weight"]
    result.save("model_slice.h5"); result.plot("figures/"); print(result.summary())

Importing this package loads no torch (``probe --help`` stays fast): each
name below is imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_HOMES = {
    # probe slice
    "slice": "landscape_probe.slicing.api",
    "SliceResult": "landscape_probe.slicing.result",
    # probe train
    "train": "landscape_probe.training.api",
    "TrainResult": "landscape_probe.training.result",
    "TrainingProbe": "landscape_probe.training.probe",
    # probe advise
    "advise": "landscape_probe.slicing.advice",
    "Advice": "landscape_probe.slicing.advice",
    # probe interpolate
    "interpolate": "landscape_probe.landscape.interpolate",
    "InterpolationResult": "landscape_probe.landscape.interpolation",
    # probe plane
    "plane": "landscape_probe.landscape.plane",
    "PlaneResult": "landscape_probe.landscape.plane_result",
    # probe hessian
    "hessian": "landscape_probe.landscape.hessian",
    "HessianResult": "landscape_probe.landscape.hessian_result",
    # results files of any kind
    "load": "landscape_probe.results",
    # errors a user can fix
    "ProbeError": "landscape_probe.errors",
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562), so that importing the package stays light."""
    if name not in _HOMES:
        raise AttributeError(f"module 'landscape_probe' has no attribute '{name}'")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
