"""The one mapping from hvac/requests failures to GenoVault errors.

Every message names what was attempted and what to do; none carries a token, key material
or plaintext. Callers chain the original exception (``raise map_error(...) from exc``) so a
debugger still sees it, while the message stays safe to print and log.
"""

from __future__ import annotations

import hvac.exceptions
import requests

from vault.errors import (
    GenoVaultError,
    IntegrityError,
    VaultDown,
    VaultError,
    VaultForbidden,
    VaultKeyMissing,
    VaultUnauthenticated,
)

HOW_TO_START = "start it with `genovault vault up` or set VAULT_ADDR/VAULT_TOKEN"

#: Failures worth retrying (connection trouble, overload); never 401/403/4xx.
RETRYABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
)


def map_error(exc: BaseException, what: str, *, addr: str | None = None,
              advice: str | None = None, decrypting: bool = False) -> GenoVaultError:
    """The project error for ``exc``, raised while doing ``what`` (e.g. "Transit decrypt with
    key 'genovault.x.sites'"). ``advice`` replaces the default hint for a 403; ``decrypting``
    turns a 400 into an IntegrityError (Vault could not unwrap stored key material)."""
    where = f"{what} at Vault {addr}" if addr else what
    if isinstance(exc, hvac.exceptions.Forbidden):
        return VaultForbidden(
            f"{where} was refused (403 permission denied): "
            + (advice or "the token's Vault policy does not allow it; use a token of the "
               "right GenoVault role (ingest: encrypt; query: decrypt; admin: key management)"))
    if isinstance(exc, hvac.exceptions.Unauthorized):
        return VaultUnauthenticated(
            f"{where} was refused (401): the Vault token is invalid or expired; log in again")
    if isinstance(exc, hvac.exceptions.VaultDown):
        return VaultDown(f"{where} failed: Vault is sealed or in maintenance. Unseal it "
                         "(`genovault vault up` for the embedded vault) and retry")
    if isinstance(exc, requests.exceptions.RequestException | hvac.exceptions.InternalServerError
                  | hvac.exceptions.BadGateway | hvac.exceptions.RateLimitExceeded):
        return VaultDown(f"{where} failed: Vault is unreachable or overloaded "
                         f"({type(exc).__name__}); {HOW_TO_START}, then retry")
    errors = [str(e) for e in (getattr(exc, "errors", None) or [])]
    text = " ".join(errors).lower()
    if isinstance(exc, hvac.exceptions.InvalidPath) or (
            isinstance(exc, hvac.exceptions.InvalidRequest) and "not found" in text):
        return VaultKeyMissing(
            f"{where} failed: the key or path does not exist (never created, or destroyed). "
            "Data encrypted under a destroyed key cannot be recovered")
    if decrypting and isinstance(exc, hvac.exceptions.InvalidRequest):
        return IntegrityError(
            f"{where} failed: Vault could not unwrap the stored key (tampered or foreign key "
            "material, or a key version no longer allowed). Run `genovault datasets verify`")
    detail = "; ".join(errors)[:200]
    return VaultError(f"{where} failed ({type(exc).__name__}{': ' + detail if detail else ''})")


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)
