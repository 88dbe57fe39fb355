"""Optimisers for ``probe train``: one module per rule, and one table of them all.

``build_optimizer(name, model, lr)`` is the one entry point the training loop
needs; the classes are importable for use in a user's own loop.
"""

from landscape_probe.optim.agd import AGD
from landscape_probe.optim.fromage import Fromage
from landscape_probe.optim.import_path import optimizer_class
from landscape_probe.optim.kfac import KFAC, KroneckerFactors
from landscape_probe.optim.lamb import Lamb
from landscape_probe.optim.lars import Lars
from landscape_probe.optim.lion import Lion
from landscape_probe.optim.madam import Madam
from landscape_probe.optim.muon import MuonWithAdamW
from landscape_probe.optim.nero import Nero
from landscape_probe.optim.noise_adaptive import NoiseAdaptiveSGD
from landscape_probe.optim.soap import Soap
from landscape_probe.optim.table import (
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    OptimizerFactory,
    OptimizerSpec,
    build_optimizer,
    default_learning_rate,
    keywords_for,
    optimizer_key,
)

__all__ = [
    # the table
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "OptimizerSpec",
    "OptimizerFactory",
    "build_optimizer",
    "default_learning_rate",
    "keywords_for",
    "optimizer_key",
    "optimizer_class",
    # relative (trust-ratio) updates
    "Fromage",
    "Lars",
    "Nero",
    "Madam",
    "AGD",
    # the optimisers compared against today
    "Lion",
    "Lamb",
    "MuonWithAdamW",
    "Soap",
    # curvature and noise
    "KFAC",
    "KroneckerFactors",
    "NoiseAdaptiveSGD",
]
