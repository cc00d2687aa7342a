"""The one error hierarchy of GenoVault.

Every message says what went wrong and what to do about it. No message ever carries
key material, a token, a genotype or a sample id.
"""

from __future__ import annotations


class GenoVaultError(Exception):
    """Base class of every error GenoVault raises on purpose."""

    exit_code = 1


class ConfigError(GenoVaultError):
    """The configuration (environment, home directory, arguments) is unusable."""

    exit_code = 2


class VaultNotConfigured(ConfigError):
    """No Vault/OpenBao is configured: no VAULT_ADDR/VAULT_TOKEN and no embedded vault."""


class VaultError(GenoVaultError):
    """Base class for failures talking to Vault/OpenBao."""


class VaultDown(VaultError):
    """Vault/OpenBao cannot be reached or is sealed; retryable."""


class VaultForbidden(VaultError):
    """Vault answered 403: the token lacks the right for this key operation; never retried."""


class VaultUnauthenticated(VaultError):
    """Vault rejected the token itself (invalid, expired or revoked); log in again."""


class VaultKeyMissing(VaultError):
    """A Transit key that the dataset needs does not exist (or was destroyed)."""


class KeyNotTrusted(VaultError):
    """A Transit key exists that GenoVault did not create (imported, exportable, wrong type ...):
    nothing is encrypted under it."""


class EmbeddedVaultError(VaultError):
    """The embedded OpenBao server could not be started, initialised or stopped."""


class ClusterQueryFailed(GenoVaultError):
    """A query's tasks on the compute cluster (Dask) failed as a whole: a worker left, its
    short-lived Vault credential expired, or a task failed; nothing was answered and the
    query can be run again."""


class StoreError(GenoVaultError):
    """Base class for problems with the on-disk dataset store."""


class DatasetNotFound(StoreError):
    """No committed dataset has this id."""


class DatasetExists(StoreError):
    """The operation would overwrite something that already exists."""


class DatasetLocked(StoreError):
    """Another process is writing to this dataset right now."""


class IntegrityError(StoreError):
    """A stored file does not match its manifest (checksum, size, rows) or fails to decrypt."""


class IngestError(GenoVaultError):
    """Base class for ingest failures; nothing of the failed ingest becomes visible."""


class InvalidInput(IngestError):
    """The input file is malformed; the message names file, line and reason."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class SampleSheetError(IngestError):
    """The sample sheet does not fit the VCF (missing, extra or duplicate ids, bad columns)."""


class DuplicateIngest(IngestError):
    """This exact source file (same checksum) was already ingested into the dataset."""
