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
    """Entry point of the ``probe`` script: freed memory kept for reuse (:mod:`landscape_probe.allocator`), then the command."""
    from landscape_probe.allocator import keep_freed_memory

    keep_freed_memory()
    app()
