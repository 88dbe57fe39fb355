"""``TrainConfig``: the settings of a ``probe train`` grid, stored in results files and checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from landscape_probe.errors import ProbeError

SCHEDULES = ("constant", "step", "exponential", "inverse", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a `probe train` experiment: the grid and the shared settings.

    The grid is optimiser × learning rate × depth × seed. ``learning_rates``
    maps an optimiser to its base rate (missing: the optimiser table's default);
    ``auto_learning_rates`` maps an optimiser trained with ``--lr auto`` to its
    advised rate per depth (``{"adam": {"4": 3e-4}}``, depths as strings so
    that the dict survives JSON), found by :mod:`landscape_probe.training.auto_lr`
    at ``auto_lr_threshold``, which takes precedence;
    ``lr_grid`` = n > 1 tries n rates spaced by decades around the base
    (see :func:`landscape_probe.training.grid.lr_grid_values`).
    ``output_key`` is the output trained on, for a model returning a tuple, dict
    or ``ModelOutput`` (the key or index :mod:`landscape_probe.models.outputs`
    chose, ``""`` for a model returning one tensor, None in older files); a run
    checkpoint's ``probe slice`` measures the same output.
    """

    optimizers: tuple[str, ...] = ("fromage",)
    learning_rates: dict[str, float] = field(default_factory=dict)
    auto_learning_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    auto_lr_threshold: float = 0.5
    lr_grid: int = 1
    depths: tuple[int, ...] = (2,)
    seeds: tuple[int, ...] = (0,)
    model: str = "mlp"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    output_key: str | None = None
    init_from: str | None = None
    width: int = 64
    activation: str = "relu"
    init: str = "lecun"
    norm: str = "none"
    dataset: str = "digits"
    loss: str | None = None
    epochs: int = 5
    batch_size: int = 64
    weight_decay: float = 0.0
    momentum: float = 0.9
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    diagnostics_every: int = 50
    save_every: int = 0
    diagnostic_batch_size: int = 128
    sharpness_iterations: int = 20
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ProbeError(f"Unknown schedule '{self.schedule}'; use one of {', '.join(SCHEDULES)}.")
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--lr-grid", self.lr_grid, 1), ("--diagnostics-every", self.diagnostics_every, 0),
                                 ("--save-every", self.save_every, 0)):
            if value < low:
                raise ProbeError(f"{name} must be at least {low}, not {value}.")
        if not self.optimizers or not self.depths or not self.seeds:
            raise ProbeError("Give at least one optimizer, one depth and one seed.")
        if any(d < 1 for d in self.depths):
            raise ProbeError(f"Every depth must be at least 1, not {min(self.depths)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists), stored in results files and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (lists become tuples again)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known})
