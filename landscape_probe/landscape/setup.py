"""What every landscape command starts from: the model on its device, the probe set, the loss, provenance.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> problem = probe_problem(model, (torch.randn(8, 3), torch.randint(0, 2, (8,))), device="cpu")
    >>> problem.loss_name, problem.x.shape, problem.model is model
    ('cross_entropy', torch.Size([8, 3]), False)
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from landscape_probe.errors import ProbeError

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ProbeProblem:
    """A model ready to evaluate (eval mode, on ``device`` in ``dtype``) and its probe set.

    Attributes:
        model: the loaded checkpoint's module, or a copy of a user's module (theirs is never changed).
        loaded: the ``LoadedCheckpoint`` for a file, None for a module.
        x, y: the probe inputs and targets, on the device.
        loss_name: the loss to measure.
        data_spec: the data set's spec, as recorded in results files.
        device: the device used.
        output_choice: which output of a model returning several is measured (``text`` "" for one tensor).
    """

    model: nn.Module
    loaded: Any
    x: Tensor
    y: Tensor
    loss_name: str
    data_spec: dict[str, Any]
    device: Any
    output_choice: Any = None

    def provenance(self, call_text: str, seed: int) -> dict[str, Any]:
        """The root attributes of a results file made from this problem (the CLI replaces ``command_line``)."""
        from landscape_probe.hdf5 import provenance

        loaded = self.loaded
        attrs = provenance(command_line=call_text, device=str(self.device), seed=seed,
                           checkpoint=loaded.path if loaded else None, checkpoint_sha256=loaded.sha256 if loaded else "")
        attrs.update(architecture=loaded.architecture if loaded else type(self.model).__name__,
                     data=json.dumps(self.data_spec, sort_keys=True),
                     output_key=self.output_choice.text if self.output_choice is not None else "")
        return attrs


def load_model(model: nn.Module | str | Path, arch: str | None, arch_kwargs: dict[str, Any] | None,
               trust: bool) -> tuple[Any, nn.Module]:
    """The loaded checkpoint (None for a module) and a module this call may move: a copy of a user's module."""
    if isinstance(model, (str, Path)):
        from landscape_probe.checkpoints.load import load_checkpoint

        loaded = load_checkpoint(model, arch, arch_kwargs, trust)
        return loaded, loaded.model
    return None, copy.deepcopy(model)


def probe_problem(
    model: nn.Module | str | Path,
    data: Any,
    *,
    probe_size: int = 512,
    split: str = "train",
    loss: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust_checkpoint: bool = False,
    output_key: str | None = None,
) -> ProbeProblem:
    """Load the model (or copy a module), pick the probe set and loss, and move both to ``device`` in ``dtype``.

    ``data`` is anything ``lp.slice`` takes; None uses the data set a self-describing checkpoint records.
    A model returning a tuple, dict or ``ModelOutput`` is hooked to return the output under
    ``output_key`` (default: the output a ``probe train`` run checkpoint was trained on, else ``logits``,
    else the first tensor; :mod:`landscape_probe.models.outputs`).

    Raises:
        ProbeError: for an unknown dtype or device, no data set, a model that does not fit the data,
            or an unreadable checkpoint or data file.
    """
    import torch

    from landscape_probe.data.compatibility import check_model_accepts
    from landscape_probe.data.datasets import probe_set
    from landscape_probe.data.inputs import dataset_for
    from landscape_probe.devices import resolve_device
    from landscape_probe.losses import loss_for
    from landscape_probe.models.modes import eval_mode, placed
    from landscape_probe.models.outputs import attach_selection, key_or_recorded

    if dtype not in DTYPES:
        raise ProbeError(f"Unknown dtype '{dtype}'; use float32 or float64.")
    used_device, torch_dtype = resolve_device(device), torch.float64 if dtype == "float64" else torch.float32
    loaded, module = load_model(model, arch, arch_kwargs, trust_checkpoint)
    dataset = dataset_for(data, loaded)
    # the module is this call's own: the hook stays
    choice, _ = attach_selection(module, key_or_recorded(output_key, loaded))
    check_model_accepts(module, dataset)
    x, y = probe_set(dataset, probe_size, seed, split)
    module = eval_mode(placed(module, used_device, torch_dtype))
    x = x.to(device=used_device, dtype=torch_dtype if torch.is_floating_point(x) else x.dtype)
    y = y.to(device=used_device, dtype=torch_dtype if torch.is_floating_point(y) else y.dtype)
    return ProbeProblem(model=module, loaded=loaded, x=x, y=y, loss_name=loss_for(dataset, loss),
                        data_spec=dataset.spec, device=used_device, output_choice=choice)
