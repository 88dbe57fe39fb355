"""Models whose forward returns more than one tensor: a tuple, a dict, or a Hugging Face ``ModelOutput``.

Every measurement needs one output tensor per example. :func:`selecting_output`
attaches a forward hook to the model that replaces whatever it returns by
one tensor: the value under ``key`` for a mapping (``ModelOutput`` is one), or
the element at index ``key`` for a tuple or list; without a key, ``logits``
when a mapping has it, else the first tensor. A plain tensor passes as it is.
The choice made is reported (``OutputChoice.text``) so that results files can
record it. Everything that calls the model, ``torch.func.functional_call``
included, then sees the chosen tensor.

Example:
    >>> import torch
    >>> class Pair(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"features": x, "logits": 2 * x}
    >>> model = Pair()
    >>> with selecting_output(model) as choice:
    ...     model(torch.ones(1)).tolist(), choice.text
    ([2.0], 'logits')
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from landscape_probe.errors import ProbeError


@dataclass
class OutputChoice:
    """Which output was taken: ``""`` for a plain tensor, else the key or index, as text."""

    text: str = ""


def choose_output(outputs: Any, key: str | None = None) -> tuple[Tensor, str]:
    """The chosen tensor of a model's outputs, and the key or index it came from ("" for a plain tensor).

    Raises:
        ProbeError: for a key or index the outputs lack, or outputs holding no tensor.
    """
    if isinstance(outputs, Tensor):
        if key is not None:
            raise ProbeError(f"--output-key {key} was given, but the model returns one tensor, not a tuple or dict.")
        return outputs, ""
    if isinstance(outputs, Mapping):
        tensors = {str(k): v for k, v in outputs.items() if isinstance(v, Tensor)}
        chosen = key if key is not None else "logits" if "logits" in tensors else next(iter(tensors), None)
        if chosen not in tensors:
            raise ProbeError(_missing(key, "keys", list(tensors)))
        return tensors[chosen], chosen
    if isinstance(outputs, (tuple, list)):
        indices = [i for i, v in enumerate(outputs) if isinstance(v, Tensor)]
        if key is not None and not (key.lstrip("-").isdigit() and -len(outputs) <= int(key) < len(outputs)
                                    and isinstance(outputs[int(key)], Tensor)):
            raise ProbeError(_missing(key, "tensor indices", [str(i) for i in indices]))
        index = int(key) if key is not None else indices[0] if indices else None
        if index is None:
            raise ProbeError("The model returns a tuple that holds no tensor, so there is no output to measure.")
        return outputs[index], str(index)
    raise ProbeError(f"The model returns a {type(outputs).__name__}, not a tensor, tuple or dict of tensors.")


def _missing(key: str | None, what: str, known: list[str]) -> str:
    if not known:
        return "The model's outputs hold no tensor, so there is no output to measure."
    return f"The model's outputs have no tensor under '{key}'; its {what} are {', '.join(known)} (use --output-key)."


def attach_selection(model: nn.Module, key: str | None = None) -> tuple[OutputChoice, Any]:
    """Hook ``model`` so that it returns one tensor from now on; returns the choice and the hook's handle.

    TorchScript modules take no hooks; they are left as they are (their outputs are checked as returned).
    """
    choice = OutputChoice()
    if isinstance(model, torch.jit.ScriptModule):
        return choice, None

    def hook(module: nn.Module, args: Any, outputs: Any) -> Tensor:
        tensor, choice.text = choose_output(outputs, key)
        return tensor

    return choice, model.register_forward_hook(hook)


def key_or_recorded(key: str | None, loaded: Any) -> str | None:
    """``key``, else the output a ``probe train`` run checkpoint was trained on (its config's ``output_key``).

    So that slicing a run checkpoint measures the output its loss was taken on, with no option;
    None when neither says (the default choice) or ``loaded`` is no checkpoint.
    """
    if key is not None:
        return key
    recorded = (getattr(loaded, "config", None) or {}).get("output_key")
    return str(recorded) if recorded else None


@contextlib.contextmanager
def selecting_output(model: nn.Module, key: str | None = None) -> Iterator[OutputChoice]:
    """:func:`attach_selection` for the block only: a user's module is given back without the hook."""
    choice, handle = attach_selection(model, key)
    try:
        yield choice
    finally:
        if handle is not None:
            handle.remove()
