"""Optimisers for ``probe train``: one module per rule, and one table of them all.

``build_optimizer(name, model, lr)`` is the one entry point the training loop
needs; the classes are importable for use in a user's own loop.
"""

from landscape_probe.optim.table import (
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    OptimizerFactory,
    OptimizerSpec,
    build_optimizer,
)

__all__ = [
    # the table
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "OptimizerSpec",
    "OptimizerFactory",
    "build_optimizer",
]
