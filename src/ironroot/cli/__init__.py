"""The ``ironroot`` command."""

from ironroot.cli._main import main

__all__ = ["main"]
