"""The OpenBao dev server for tests (it lives in vault.keys.devserver, which benchmarks use too)."""

from vault.keys.devserver import DevServer, dev_server, free_port

__all__ = ["DevServer", "dev_server", "free_port"]
