"""`probe train`. (Being written.)"""

from landscape_probe.cli.app import app  # noqa: F401
