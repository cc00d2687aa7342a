"""Identity rules for names that reach paths, Vault key names and policies."""

from __future__ import annotations

import re

from vault.errors import ConfigError

DATASET_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_dataset_id(dataset: str) -> str:
    """Return ``dataset`` if it is a valid dataset id, else raise ConfigError.

    The whole string must match (``fullmatch``): a trailing newline or any other character
    outside the alphabet is refused before anything touches the disk or Vault.
    """
    if not isinstance(dataset, str) or not DATASET_ID_RE.fullmatch(dataset):
        raise ConfigError(
            f"invalid dataset id {dataset!r}: use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return dataset
