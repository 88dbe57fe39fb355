"""The ``probe`` command line. Each command lives in its own module."""

from landscape_probe.cli.app import app
from landscape_probe.cli import info  # noqa: F401  (registers the command)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``probe`` script."""
    app()
