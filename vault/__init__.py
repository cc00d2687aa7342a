"""GenoVault trusted package: configuration, keys, store, ingest and the command line."""

__version__ = "0.1.0"
