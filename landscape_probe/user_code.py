"""Importing a name from the user's own code (``--arch mypkg.models:make_net``, ``--optimizer mypkg.optim:MyOpt``).

The current folder is importable, as it is for ``python -c``, so a module
beside the user's data or checkpoints is found.

Example:
    >>> import_attribute("math", "sqrt", "--arch")(4.0)
    2.0
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from landscape_probe.errors import ProbeError


def import_attribute(module_name: str, attribute: str, purpose: str) -> Any | None:
    """``module_name.attribute``, or None when the module has no such attribute.

    Args:
        module_name: a dotted module path.
        attribute: the name to take from it.
        purpose: what it is for, for the message (``--arch``, ``optimizer 'pkg:Opt'``).

    Raises:
        ProbeError: the module does not import (any error while importing it).
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure while importing user code
        raise ProbeError(f"Cannot import module '{module_name}' for {purpose}: {err}.") from None
    return getattr(module, attribute, None)
