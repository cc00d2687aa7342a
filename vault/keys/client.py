"""Connect to Vault/OpenBao: an external one (``VAULT_ADDR`` + ``VAULT_TOKEN``) or the embedded one.

Every failure becomes a project error whose message says what went wrong and what to do.
No message, log line, repr or exception raised here ever carries a token or unseal key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import ConfigError, VaultDown, VaultUnauthenticated
from vault.keys.errors import HOW_TO_START, map_error
from vault.keys.names import TOKEN_ROLES
from vault.settings import Settings

#: Seconds to wait for Vault before declaring it unreachable.
CONNECT_TIMEOUT_S = 10

#: The opaque client type the rest of GenoVault passes around (it never calls it directly).
VaultClient = hvac.Client


def connect(settings: Settings, role: str | None = None,
            dataset: str | None = None) -> hvac.Client:
    """Return an authenticated hvac client for an unsealed Vault/OpenBao.

    If the settings name an external Vault (``VAULT_ADDR`` and ``VAULT_TOKEN``), that token is
    used as given and ``role``/``dataset`` are ignored (the token decides what the caller may
    do). Otherwise the embedded vault under ``settings.home`` is used: with ``role``
    (``ingest``/``query``/``admin``) the client holds a freshly minted, short-lived token of
    that role (for ``ingest`` with ``dataset``: scoped to that dataset); without it, the root
    token. A token minted here is never revoked: prefer :func:`session`, which revokes it.

    Raises VaultDown (unreachable or sealed), VaultUnauthenticated (token rejected),
    VaultNotConfigured (no Vault at all), ConfigError.
    """
    client, _minted_by = _connect(settings, role, dataset, ttl=None)
    return client


@contextlib.contextmanager
def session(settings: Settings, role: str | None = None, *, dataset: str | None = None,
            ttl: str | None = None) -> Iterator[hvac.Client]:
    """Like :func:`connect`, as a context manager that revokes the token at exit if it minted it.

    A caller's own ``VAULT_TOKEN`` and the embedded root token are never revoked. ``ttl``
    (default 15 minutes) bounds a minted token's life should revocation fail (Vault down).
    """
    client, minter = _connect(settings, role, dataset, ttl=ttl)
    try:
        yield client
    finally:
        if minter is not None:
            revoke_token(minter, client)


def revoke_token(minter: hvac.Client, client: hvac.Client) -> None:
    """Revoke ``client``'s token (best effort: if Vault is unreachable it expires by its TTL)."""
    with contextlib.suppress(requests.exceptions.RequestException, hvac.exceptions.VaultError):
        accessor = client.auth.token.lookup_self()["data"]["accessor"]
        minter.auth.token.revoke_accessor(accessor)
        return
    with contextlib.suppress(requests.exceptions.RequestException, hvac.exceptions.VaultError):
        client.auth.token.revoke_self()


def _connect(settings: Settings, role: str | None, dataset: str | None, *,
             ttl: str | None) -> tuple[hvac.Client, hvac.Client | None]:
    """(client, the client that minted its token or None if nothing was minted)."""
    if role is not None and role not in TOKEN_ROLES:
        raise ConfigError(f"unknown Vault role {role!r}: use one of {', '.join(TOKEN_ROLES)}")
    if dataset is not None:
        from vault.ids import check_dataset_id

        check_dataset_id(dataset)
    if settings.external_vault:
        assert settings.vault_addr is not None and settings.vault_token is not None
        return _checked_client(settings.vault_addr, settings.vault_token.get_secret_value(),
                               source="VAULT_ADDR/VAULT_TOKEN"), None
    from vault.keys.embedded import read_embedded_credentials  # embedded imports client lazily

    home = settings.home
    embedded_addr, root_token = read_embedded_credentials(home)
    root = _checked_client(embedded_addr, root_token, source=f"the embedded vault in {home}")
    if role is None:
        return root, None
    from vault.keys.bootstrap import DEFAULT_ROLE_TOKEN_TTL, mint_role_token

    role_token = mint_role_token(root, role,
                                 dataset=dataset if role in ("ingest", "query") else None,
                                 ttl=ttl or DEFAULT_ROLE_TOKEN_TTL)
    return _checked_client(embedded_addr, role_token, source=f"a minted {role} token"), root


def client_for(addr: str, token: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> hvac.Client:
    """An hvac client for ``addr`` and ``token`` that is checked like ``connect()`` checks it.
    ``timeout_s`` bounds every call it makes (connect, and each wait for an answer)."""
    return _checked_client(addr, token, source=addr, timeout_s=timeout_s)


def _checked_client(addr: str, token: str, *, source: str,
                    timeout_s: float = CONNECT_TIMEOUT_S) -> hvac.Client:
    client = hvac.Client(url=addr, token=token, timeout=timeout_s)
    check_ready(client, source=source)
    try:
        client.auth.token.lookup_self()
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as e:
        raise VaultUnauthenticated(
            f"Vault at {addr} rejected the token from {source} (invalid, expired or revoked): "
            "get a new token, or unset VAULT_ADDR/VAULT_TOKEN to use the embedded vault"
        ) from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "token lookup", addr=addr) from e
    return client


def probe_client(addr: str, *, timeout_s: float = 2.0) -> hvac.Client:
    """A tokenless client for health probes (seal status only), with a short timeout."""
    return hvac.Client(url=addr, timeout=timeout_s)


def check_ready(client: hvac.Client, *, source: str | None = None) -> None:
    """Raise VaultDown unless the Vault at ``client.url`` answers, is initialised and unsealed."""
    addr = client.url
    where = f"Vault at {addr}" + (f" ({source})" if source else "")
    try:
        status = client.sys.read_seal_status()
    except requests.exceptions.RequestException as e:
        raise VaultDown(f"{where} cannot be reached: {HOW_TO_START}") from e
    except hvac.exceptions.VaultError as e:
        raise VaultDown(
            f"{where} answered with an error ({type(e).__name__}): {HOW_TO_START}"
        ) from e
    if not isinstance(status, dict):
        raise VaultDown(f"{where} did not answer like Vault/OpenBao: check the address")
    if not status.get("initialized", False):
        raise VaultDown(
            f"{where} is not initialised: run `genovault vault up` (embedded) or "
            "`bao operator init` (external)"
        )
    if status.get("sealed", True):
        raise VaultDown(
            f"{where} is sealed: unseal it (`genovault vault up` unseals the embedded vault; "
            "`bao operator unseal` for an external one)"
        )


def token_identity(client: hvac.Client) -> dict[str, Any]:
    """Who holds this client's token (never the token itself).

    ``display_name``, ``entity_id``, ``policies`` (the token's), and ``on_behalf_of``: for a
    token minted by :func:`~vault.keys.bootstrap.mint_role_token`, the display name of the
    token that minted it (from the token's metadata), else ``""``; ``on_behalf_of_entity``
    likewise its entity id.
    """
    try:
        data = client.auth.token.lookup_self()["data"]
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as e:
        raise VaultUnauthenticated(
            f"Vault at {client.url} rejected the token on lookup-self") from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "token lookup", addr=client.url) from e
    meta = data.get("meta") or {}
    return {
        "display_name": data.get("display_name") or "",
        "entity_id": data.get("entity_id") or "",
        "policies": sorted(data.get("policies") or []),
        "on_behalf_of": str(meta.get("minted_by") or ""),
        "on_behalf_of_entity": str(meta.get("minted_by_entity") or ""),
    }
