"""A user's own optimiser, named by import path: ``mypkg.optim:MyOpt``.

Any ``torch.optim.Optimizer`` subclass whose constructor takes the parameters
first and ``lr`` as a keyword (every torch.optim class does, and so do those of
``pytorch-optimizer``) can be trained and compared like a row of the table; it
is built as ``MyOpt(model.parameters(), lr=lr, **optimizer_kwargs)``. The
table's momentum and weight decay are not passed: give them in the keywords.

Example:
    >>> is_import_path("torch.optim:SGD"), is_import_path("adam")
    (True, False)
    >>> optimizer_class("torch.optim:Adam").__name__
    'Adam'
    >>> default_lr_of(optimizer_class("torch.optim:Adam"))
    0.001
"""

from __future__ import annotations

import inspect
import re

import torch

from landscape_probe.errors import ProbeError
from landscape_probe.user_code import import_attribute


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads as ``module:Class`` rather than a name from the table."""
    return ":" in name


def optimizer_class(path: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim.Optimizer`` subclass that ``module:Class`` names (the current folder is importable).

    Raises:
        ProbeError: the module does not import, has no such attribute, or it is not an Optimizer class.
    """
    module_name, _, class_name = path.partition(":")
    if not module_name or not class_name:
        raise ProbeError(f"Optimizer '{path}' should read module:Class, e.g. mypkg.optim:MyOpt.")
    cls = import_attribute(module_name, class_name, f"optimizer '{path}'")
    if cls is None:
        raise ProbeError(f"Module '{module_name}' has no '{class_name}' for optimizer '{path}'.")
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise ProbeError(f"'{path}' is a {type(cls).__name__}, not a torch.optim.Optimizer class.")
    return cls


def default_lr_of(cls: type[torch.optim.Optimizer]) -> float | None:
    """The default of the class's ``lr`` argument, or None when it has no usable one."""
    try:
        parameter = inspect.signature(cls.__init__).parameters.get("lr")
    except (TypeError, ValueError):
        return None
    if parameter is None or not isinstance(parameter.default, (int, float)) or isinstance(parameter.default, bool):
        return None
    return float(parameter.default) if parameter.default > 0 else None


def folder_safe(name: str) -> str:
    """``name`` with every character but letters, digits, ``_`` and ``-`` replaced by ``_`` (for run folders)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
