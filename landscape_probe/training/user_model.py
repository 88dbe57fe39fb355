"""The user's own model in ``probe train``, and the weights a grid starts from (``--init-from``).

A model given as an import path (``--arch mypkg.models:make_net --arch-kwargs
'{"width": 64}'``, ``lp.train("mypkg.models:make_net", arch_kwargs=...)``) is
built by :class:`ImportedModel`, under each run's seed. Its run checkpoints
record it as such, ``{"name": "custom", "factory": "mypkg.models:make_net",
"arch_kwargs": {...}}`` (:func:`factory_args`), and ``probe slice`` rebuilds it
from that record with no option when the import path resolves
(:func:`landscape_probe.checkpoints.architecture.build_recorded`). A function
passed to ``lp.train`` is recorded by its ``module:qualified_name``.

With ``init_from``, every run starts from the weights of one checkpoint
instead of fresh ones, so that every optimiser fine-tunes the same network.

Example:
    >>> factory = ImportedModel("torch.nn:Linear", {"in_features": 3, "out_features": 2})
    >>> factory_args(factory)
    {'name': 'custom', 'factory': 'torch.nn:Linear', 'arch_kwargs': {'in_features': 3, 'out_features': 2}}
    >>> factory().weight.shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape_probe.checkpoints.architecture import align_keys, build_imported
from landscape_probe.errors import ProbeError

ModelFactory = Callable[[], nn.Module]
"""A user's own model: called with no arguments (under the run's seed), returns a fresh ``nn.Module``."""


@dataclass(frozen=True)
class ImportedModel:
    """The model that ``arch(**kwargs)`` builds, ``arch`` an import path ``pkg.module:function``."""

    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> nn.Module:
        return build_imported(self.arch, self.kwargs)


def factory_args(factory: ModelFactory) -> dict[str, Any]:
    """The ``model_args`` recorded for a user's model: its import path and keywords.

    For a function, ``module:qualified_name``; ``probe slice`` rebuilds the model from
    it when that resolves (not for a lambda or a function defined inside another).
    """
    if isinstance(factory, ImportedModel):
        return {"name": "custom", "factory": factory.arch, "arch_kwargs": dict(factory.kwargs)}
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None) or type(factory).__name__
    return {"name": "custom", "factory": f"{module}:{name}", "arch_kwargs": {}}


def read_initial_weights(path: Path | str, trust: bool = False) -> dict[str, Tensor]:
    """The weights (parameters and buffers) of a checkpoint of any format ``probe info`` reads, bare ones included.

    ``trust`` allows a pickle that needs code to load (a whole ``nn.Module``), as ``probe slice
    --trust-checkpoint`` does; without it such a file is refused.

    Raises:
        ProbeError: for a missing, unreadable or (without ``trust``) unsafe file.
    """
    from landscape_probe.checkpoints.load import WeightsOnly, load_checkpoint

    try:
        return {name: t.detach().clone() for name, t in load_checkpoint(path, trust=trust).model.state_dict().items()}
    except WeightsOnly as bare:
        return dict(bare.state_dict)


def start_from(model: nn.Module, weights: dict[str, Tensor], path: Path | str) -> None:
    """Copy ``weights`` (read from ``path``) into ``model``.

    Raises:
        ProbeError: in one sentence, when the checkpoint holds another architecture than the one trained.
    """
    expected = model.state_dict()
    weights = align_keys(weights, expected)
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in weights and weights[k].shape != v.shape]
    problems = [f"{label} {', '.join(names[:3])}{' …' if len(names) > 3 else ''}"
                for label, names in (("missing", missing), ("unexpected", unexpected),
                                     ("shaped differently (checkpoint vs model)", shapes)) if names]
    if problems:
        raise ProbeError(f"--init-from '{path}' holds another architecture than the model trained: "
                         f"{'; '.join(problems)}.")
    model.load_state_dict(weights)
