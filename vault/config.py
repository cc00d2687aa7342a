"""Where GenoVault keeps its files, and the few settings read from the environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vault.errors import ConfigError

DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def genovault_home() -> Path:
    """The GenoVault home: ``$GENOVAULT_HOME`` or ``~/.genovault``."""
    raw = os.environ.get("GENOVAULT_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".genovault"
    return home.resolve()


def store_root() -> Path:
    """Root folder of the dataset store: ``$GENOVAULT_STORE`` or ``<home>/store``."""
    raw = os.environ.get("GENOVAULT_STORE")
    return Path(raw).expanduser().resolve() if raw else genovault_home() / "store"


def check_dataset_id(dataset: str) -> str:
    """Return ``dataset`` if it is a valid dataset id, else raise ConfigError."""
    if not DATASET_ID_RE.match(dataset):
        raise ConfigError(
            f"invalid dataset id {dataset!r}: use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return dataset


def transit_key_name(dataset: str, data_class: str) -> str:
    """Name of the Transit key for one dataset and data class, e.g. ``genovault.cohort1.genotypes``.

    Dots separate the parts because dataset ids cannot contain dots, so the Vault policy glob
    ``genovault.<dataset>.*`` never matches another dataset's keys.
    """
    return f"genovault.{check_dataset_id(dataset)}.{data_class}"
