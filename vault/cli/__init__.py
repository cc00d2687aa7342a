"""The ``genovault`` command line: one module per command group (see docs/architecture.md)."""

from vault.cli.main import main

__all__ = ["main"]
