"""The table of optimisers that ``probe train`` can use, and how to build one.

Every entry is built from the same four arguments — the model, a learning rate,
a momentum and a weight decay — so the training loop treats them all alike:
forward, ``loss.backward()``, ``optimizer.step()``, ``optimizer.zero_grad()``.
An optimiser that has no use for momentum or weight decay ignores them; its
``description`` says which it uses ("neither" for those that use neither).

A name of the form ``module:Class`` is a user's own ``torch.optim.Optimizer``
(see :mod:`landscape_probe.optim.import_path`), built from the
model's parameters, the learning rate and the user's keywords.

Example:
    >>> from torch import nn
    >>> model = nn.Linear(4, 2)
    >>> optimizer = build_optimizer("adam", model)
    >>> optimizer.param_groups[0]["lr"]
    0.001
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from landscape_probe.errors import ProbeError
from landscape_probe.optim.agd import AGD
from landscape_probe.optim.fromage import Fromage
from landscape_probe.optim.import_path import default_lr_of, is_import_path, optimizer_class
from landscape_probe.optim.kfac import KFAC
from landscape_probe.optim.lamb import Lamb
from landscape_probe.optim.lars import Lars
from landscape_probe.optim.lion import Lion
from landscape_probe.optim.madam import Madam
from landscape_probe.optim.muon import MuonWithAdamW
from landscape_probe.optim.nero import Nero
from landscape_probe.optim.noise_adaptive import NoiseAdaptiveSGD
from landscape_probe.optim.soap import Soap

OptimizerFactory = Callable[[nn.Module, float, float, float], torch.optim.Optimizer]
"""``factory(model, lr, momentum, weight_decay)`` returns a ready optimiser."""


@dataclass(frozen=True)
class OptimizerSpec:
    """One row of the table.

    Attributes:
        name: the name users type (``--optimizer NAME``).
        default_lr: a learning rate that trains a small MLP on ``digits`` with
            cross-entropy; ``--lr-grid`` searches around it.
        description: one line: the rule, and which of momentum / weight decay it uses.
        factory: ``factory(model, lr, momentum, weight_decay)``.
        requires: the optional package the row needs (installed with the extra of the same
            name), or None; ``--optimizer all`` leaves out the rows whose package is missing.
        gradient_only: whether ``.grad`` is all the optimiser reads of a batch, so that a batch divided
            among ranks (``probe train --shard data``) steps it as one process does once the ranks' gradients
            are summed; K-FAC also reads each layer's inputs and output gradients, a rank's part only.
    """

    name: str
    default_lr: float
    description: str
    factory: OptimizerFactory
    requires: str | None = None
    gradient_only: bool = True

    @property
    def available(self) -> bool:
        """Whether the package it requires (if any) is installed."""
        import importlib.util

        return self.requires is None or importlib.util.find_spec(self.requires) is not None


def _sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _momentum(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)


def _nesterov(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    if momentum <= 0.0:
        raise ProbeError("Nesterov momentum needs --momentum greater than 0.")
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay,
                           **extra)


def _adagrad(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _rmsprop(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _adam(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _adamw(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _fromage(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Fromage(model.parameters(), lr=lr, **extra)


def _lars(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Lars(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)


def _nero(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Nero(model.parameters(), lr=lr, **extra)


def _madam(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Madam(model.parameters(), lr=lr, **extra)


def _agd(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return AGD(model.parameters(), lr=lr, **extra)


def _kfac(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return KFAC(model, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)


def _noise_adaptive(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any
) -> torch.optim.Optimizer:
    return NoiseAdaptiveSGD(model.parameters(), lr=lr, **extra)


def _lion(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Lion(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _lamb(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Lamb(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _adafactor(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any
) -> torch.optim.Optimizer:
    return torch.optim.Adafactor(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _muon(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return MuonWithAdamW(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)


def _soap(model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any) -> torch.optim.Optimizer:
    return Soap(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


def _schedulefree_adamw(
    model: nn.Module, lr: float, momentum: float, weight_decay: float, **extra: Any
) -> torch.optim.Optimizer:
    """The authors' own ``schedulefree.AdamWScheduleFree`` (an optional extra), put in train mode.

    It holds two points: the gradient is taken at y (train mode), the average x is what
    is evaluated (eval mode); the training loop calls ``train()`` / ``eval()`` around steps
    (:func:`landscape_probe.optim.stepping.optimizer_mode`).
    """
    try:
        from schedulefree import AdamWScheduleFree
    except ImportError:
        raise ProbeError("Schedule-Free AdamW needs the schedulefree package: pip install schedulefree "
                         "(or pip install 'landscape_probe[schedulefree]').") from None
    optimizer = AdamWScheduleFree(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)
    optimizer.train()
    return optimizer


_SPECS: tuple[OptimizerSpec, ...] = (
    OptimizerSpec("sgd", 0.1, "SGD, W ← W − η·g (weight decay)", _sgd),
    OptimizerSpec("momentum", 0.01, "SGD with heavy-ball momentum (momentum, weight decay)", _momentum),
    OptimizerSpec("nesterov", 0.01, "SGD with Nesterov momentum (momentum, weight decay)", _nesterov),
    OptimizerSpec("adagrad", 0.01, "AdaGrad, Duchi et al. 2011 (weight decay)", _adagrad),
    OptimizerSpec("rmsprop", 1e-3, "RMSProp, Tieleman & Hinton 2012 (weight decay)", _rmsprop),
    OptimizerSpec("adam", 1e-3, "Adam, Kingma & Ba 2015 (weight decay as L2)", _adam),
    OptimizerSpec("adamw", 1e-3, "AdamW, Loshchilov & Hutter 2019 (decoupled weight decay)", _adamw),
    OptimizerSpec("fromage", 0.01, "Fromage, Bernstein et al. 2020: relative step η per layer (neither)", _fromage),
    OptimizerSpec("lars", 1e-3, "LARS, You et al. 2017: trust-ratio step (momentum, weight decay)", _lars),
    OptimizerSpec("nero", 0.01, "Nero, Liu et al. 2021: per-neuron relative step (neither)", _nero),
    OptimizerSpec("madam", 0.01, "Madam, Bernstein et al. 2020: multiplicative Adam (neither)", _madam),
    OptimizerSpec("agd", 1.0, "AGD, Bernstein et al. 2023: automatic step size, lr scales it (neither)", _agd),
    OptimizerSpec("kfac", 3e-3, "K-FAC, Martens & Grosse 2015 (momentum, weight decay)", _kfac,
                  gradient_only=False),
    OptimizerSpec("noise_adaptive", 0.5, "SGD, per-coordinate step B/(2·B*·L) capped by lr (neither)", _noise_adaptive),
    # Lion: its authors advise a rate 3–10× smaller than AdamW's (1e-3 here); 3e-4 was also the best of
    # 3e-3 / 3e-4 / 3e-5 for the depth-2 MLP of docs/reproduce.md §2 (3e-5 at depths 16 and 32).
    OptimizerSpec("lion", 3e-4, "Lion, Chen et al. 2023: sign of interpolated momentum (decoupled weight decay)", _lion),
    OptimizerSpec("lamb", 0.01, "LAMB, You et al. 2020: Adam step scaled by a layer trust ratio (weight decay)", _lamb),
    OptimizerSpec("adafactor", 0.01, "Adafactor, Shazeer & Stern 2018: factored second moment, relative step "
                  "capped by lr (decoupled weight decay)", _adafactor),
    # Muon: 0.02 is Keller Jordan's default (torch.optim.Muon's own default, 1e-3, goes with weight decay 0.1
    # and AdamW-scale rates); it was also the best of 0.2 / 0.02 / 0.002 for the depth-2 MLP of
    # docs/reproduce.md §2 (0.002 at depths 8–32).
    OptimizerSpec("muon", 0.02, "Muon, Jordan et al. 2024: orthogonalised momentum on matrices, AdamW on the "
                  "rest (momentum, decoupled weight decay)", _muon),
    OptimizerSpec("soap", 3e-3, "SOAP, Vyas et al. 2024: Adam in the eigenbasis of Shampoo's factors, refreshed "
                  "every 10 steps; the first step only gathers them (decoupled weight decay)", _soap),
    OptimizerSpec("schedulefree_adamw", 2.5e-3, "Schedule-Free AdamW, Defazio et al. 2024: gradient at an "
                  "interpolation y, evaluated at the running average x (decoupled weight decay; needs the "
                  "schedulefree package)", _schedulefree_adamw, requires="schedulefree"),
)

OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in _SPECS}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)


def optimizer_key(name: str) -> str:
    """The table's key for ``name`` (lower case, "-" as "_"); an import path ``module:Class`` is kept as given."""
    name = name.strip()
    return name if is_import_path(name) else name.lower().replace("-", "_")


def default_learning_rate(name: str) -> float:
    """The table's ``default_lr``, or the ``lr`` default of a user's class named ``module:Class``.

    Raises:
        ProbeError: unknown name, or a user's class without a default learning rate.
    """
    key = optimizer_key(name)
    if is_import_path(key):
        lr = default_lr_of(optimizer_class(key))
        if lr is None:
            raise ProbeError(f"'{key}' has no default learning rate; give one with --lr {key}=RATE.")
        return lr
    if key not in OPTIMIZERS:
        raise ProbeError(f"Unknown optimizer '{name}'; use one of: {', '.join(OPTIMIZER_NAMES)}, or module:Class.")
    return OPTIMIZERS[key].default_lr


def build_optimizer(
    name: str,
    model: nn.Module,
    lr: float | None = None,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    optimizer_kwargs: dict[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimiser called ``name`` for ``model``'s parameters.

    Args:
        name: a key of :data:`OPTIMIZERS` (case-insensitive; "-" reads as "_"), or
            ``module:Class`` for any ``torch.optim.Optimizer`` subclass.
        model: the network; K-FAC also registers hooks on its Linear/Conv2d modules.
        lr: learning rate; ``None`` takes :func:`default_learning_rate`.
        momentum: momentum coefficient in [0, 1), for the optimisers that use one.
        weight_decay: non-negative weight decay, for the optimisers that use one.
        optimizer_kwargs: further keywords for the optimiser's constructor (lists become
            tuples, as JSON has none): any for a ``module:Class`` optimiser, and those of
            the row's class for a table row (``g_bound`` for Madam, ``damping_mode`` and
            ``kl_clip`` for K-FAC, ``betas`` for Adam, ...).

    Returns:
        A ``torch.optim.Optimizer`` whose ``param_groups[i]["lr"]`` is the learning
        rate, so LR schedulers work.

    Raises:
        ProbeError: unknown name, an import path that does not name an Optimizer
            class or whose constructor rejects the keywords, or a learning rate,
            momentum or weight decay out of range.
    """
    key = optimizer_key(name)
    lr = default_learning_rate(key) if lr is None else float(lr)
    if not (math.isfinite(lr) and lr > 0.0):
        raise ProbeError(f"The learning rate for {key} must be a positive number, not {lr}.")
    if not 0.0 <= momentum < 1.0:
        raise ProbeError(f"--momentum must be in [0, 1), not {momentum}.")
    if not (math.isfinite(weight_decay) and weight_decay >= 0.0):
        raise ProbeError(f"--weight-decay must be a non-negative number, not {weight_decay}.")
    if is_import_path(key):
        keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in (optimizer_kwargs or {}).items()}
        try:
            return optimizer_class(key)(model.parameters(), lr=lr, **keywords)
        except ProbeError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure in the user's constructor
            raise ProbeError(f"Cannot build {key}(params, lr={lr:g}, **{optimizer_kwargs or {}}): {err}.") from None
    keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in (optimizer_kwargs or {}).items()}
    try:
        return OPTIMIZERS[key].factory(model, lr, momentum, weight_decay, **keywords)
    except (TypeError, ValueError) as err:
        if not keywords:
            raise
        raise ProbeError(f"The {key} optimizer cannot be built with the keywords {optimizer_kwargs}: {err}.") from None


def keywords_for(optimizer_kwargs: dict[str, Any] | None, name: str, trained: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keywords meant for optimiser ``name`` among the ``trained`` ones.

    A dict of dicts keyed by optimiser names (``{"kfac": {"kl_clip": 0.001}, "madam": {"g_bound": 5}}``)
    gives each its own; a flat dict goes to the ``module:Class`` optimisers when any is trained (as
    before table rows took keywords), else to every optimiser trained.
    """
    kwargs = optimizer_kwargs or {}
    if kwargs and all(isinstance(v, dict) for v in kwargs.values()):
        return dict(kwargs.get(name, {}))
    if any(is_import_path(other) for other in trained) and not is_import_path(name):
        return {}
    return dict(kwargs)
