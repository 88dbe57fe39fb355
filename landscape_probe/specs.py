"""Short text specs for the command line: ``name:key=value,key=value``.

Model specs (``mlp:depth=16,width=256``) and data specs
(``synthetic:task=regression,n_train=512``) share this one reader. Values
become bool, int or float where they read as one; ``1x8x8`` becomes the list
``[1, 8, 8]`` (shapes, channel lists); everything else stays a string.

Example:
    >>> parse_spec("cnn:input_shape=1x8x8,depth=2,norm=batch")
    ('cnn', {'input_shape': [1, 8, 8], 'depth': 2, 'norm': 'batch'})
"""

from __future__ import annotations

import re
from typing import Any

from landscape_probe.errors import ProbeError

_INT_LIST = re.compile(r"^\d+(x\d+)+$")


def parse_spec(spec: str, what: str = "spec") -> tuple[str, dict[str, Any]]:
    """Split ``name:key=value,...`` into the name and a dict of typed options.

    Args:
        spec: the text, e.g. ``mlp:depth=16,width=256``; ``mlp`` alone has no options.
        what: how the error message calls the spec ("model spec", "data spec").

    Returns:
        The name and the options, in the order written.

    Raises:
        ProbeError: for an item that is not ``key=value`` or an empty name.
    """
    name, _, rest = spec.partition(":")
    if not name.strip():
        raise ProbeError(f"The {what} '{spec}' has no name before the ':'.")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProbeError(f"Cannot read '{item}' in the {what} '{spec}'; write key=value.")
        options[key.strip()] = parse_value(value.strip())
    return name.strip(), options


def parse_value(text: str) -> Any:
    """``true``/``false`` → bool, ``12`` → int, ``0.5`` → float, ``1x8x8`` → list of int, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT_LIST.match(lowered):
        return [int(part) for part in lowered.split("x")]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
