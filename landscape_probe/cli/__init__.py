"""The ``probe`` command line. Each command lives in its own module."""

from landscape_probe.cli import (  # noqa: F401  (register the commands)
    advise,
    export,
    hessian,
    info,
    interpolate,
    plane,
    results_cmds,
    slice,
    train,
)
from landscape_probe.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``probe`` script."""
    app()
