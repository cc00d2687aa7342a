"""Connect to Vault/OpenBao: an external one (``VAULT_ADDR`` + ``VAULT_TOKEN``) or the embedded one.

Every failure becomes a project error whose message says what went wrong and what to do.
No message, log line, repr or exception raised here ever carries a token or unseal key.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.config import genovault_home
from vault.errors import ConfigError, VaultDown, VaultError, VaultForbidden

#: Seconds to wait for Vault before declaring it unreachable.
CONNECT_TIMEOUT_S = 10

ROLES = ("ingest", "query", "admin")

_HOW_TO_START = "start it with `genovault vault up` or set VAULT_ADDR/VAULT_TOKEN"


def connect(role: str | None = None) -> hvac.Client:
    """Return an authenticated hvac client for an unsealed Vault/OpenBao.

    If ``VAULT_ADDR`` and ``VAULT_TOKEN`` are both set they are used as given and ``role`` is
    ignored (the token decides what the caller may do). Otherwise the embedded vault under
    ``genovault_home()`` is used: with ``role`` (``ingest``/``query``/``admin``) the client holds a
    freshly minted, short-lived token of that role; without it, the root token.

    Raises VaultDown (unreachable or sealed), VaultForbidden (token rejected), ConfigError.
    """
    if role is not None and role not in ROLES:
        raise ConfigError(f"unknown Vault role {role!r}: use one of {', '.join(ROLES)}")
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    if addr and token:
        return _checked_client(addr, token, source="VAULT_ADDR/VAULT_TOKEN")
    if addr or token:
        missing = "VAULT_TOKEN" if addr else "VAULT_ADDR"
        raise ConfigError(
            f"only one of VAULT_ADDR/VAULT_TOKEN is set: set {missing} too, "
            "or unset both to use the embedded vault (`genovault vault up`)"
        )
    from vault.bao import read_embedded_credentials  # local: bao imports nothing from here

    home = genovault_home()
    embedded_addr, root_token = read_embedded_credentials(home)
    root = _checked_client(embedded_addr, root_token, source=f"the embedded vault in {home}")
    if role is None:
        return root
    from vault.bootstrap import mint_role_token

    role_token = mint_role_token(root, role)
    return _checked_client(embedded_addr, role_token, source=f"a minted {role} token")


def client_for(addr: str, token: str) -> hvac.Client:
    """An hvac client for ``addr`` and ``token`` that is checked like ``connect()`` checks it."""
    return _checked_client(addr, token, source=addr)


def _checked_client(addr: str, token: str, *, source: str) -> hvac.Client:
    client = hvac.Client(url=addr, token=token, timeout=CONNECT_TIMEOUT_S)
    check_ready(client, source=source)
    try:
        client.auth.token.lookup_self()
    except hvac.exceptions.Forbidden as e:
        raise VaultForbidden(
            f"Vault at {addr} rejected the token from {source} (invalid, expired or revoked): "
            "get a new token, or unset VAULT_ADDR/VAULT_TOKEN to use the embedded vault"
        ) from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise _translate(e, addr, "token lookup") from e
    return client


def check_ready(client: hvac.Client, *, source: str | None = None) -> None:
    """Raise VaultDown unless the Vault at ``client.url`` answers, is initialised and unsealed."""
    addr = client.url
    where = f"Vault at {addr}" + (f" ({source})" if source else "")
    try:
        status = client.sys.read_seal_status()
    except requests.exceptions.RequestException as e:
        raise VaultDown(f"{where} cannot be reached: {_HOW_TO_START}") from e
    except hvac.exceptions.VaultError as e:
        raise VaultDown(
            f"{where} answered with an error ({type(e).__name__}): {_HOW_TO_START}"
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
    """Who holds this client's token: display_name, entity_id, policies (never the token itself)."""
    try:
        data = client.auth.token.lookup_self()["data"]
    except hvac.exceptions.Forbidden as e:
        raise VaultForbidden(f"Vault at {client.url} rejected the token on lookup-self") from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise _translate(e, client.url, "token lookup") from e
    return {
        "display_name": data.get("display_name") or "",
        "entity_id": data.get("entity_id") or "",
        "policies": sorted(data.get("policies") or []),
    }


def create_transit_key(client: hvac.Client, name: str) -> None:
    """Create the aes256-gcm96 Transit key ``name`` if it does not exist (no-op if it does).

    This works with the *ingest* role's least-privilege policy: creation goes through Transit's
    encrypt-upsert (``create`` on ``transit/encrypt/genovault.*``, restricted to
    ``type=aes256-gcm96`` and ``plaintext``), so the ingest role never needs ``update`` on
    ``transit/keys/…`` — which on OpenBao would also allow rotating any ``genovault.*`` key.
    Keys created this way are never exportable and never allow plaintext backup.
    """
    empty = base64.b64encode(b"").decode("ascii")
    try:
        client.secrets.transit.encrypt_data(name, plaintext=empty, type="aes256-gcm96")
    except hvac.exceptions.Forbidden as e:
        raise VaultForbidden(
            f"Vault denied creating/using Transit key {name!r} (transit/encrypt): "
            "the token needs the genovault-ingest or genovault-admin policy"
        ) from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise _translate(e, client.url, f"create Transit key {name!r}") from e


def _translate(e: Exception, addr: str, what: str) -> VaultError:
    """Map an hvac/requests exception to a project error (message without secrets)."""
    if isinstance(e, requests.exceptions.RequestException):
        return VaultDown(f"Vault at {addr} cannot be reached during {what}: {_HOW_TO_START}")
    if isinstance(e, hvac.exceptions.Forbidden):
        return VaultForbidden(f"Vault at {addr} denied {what}: the token lacks the right")
    if isinstance(e, hvac.exceptions.VaultDown):
        return VaultDown(f"Vault at {addr} is sealed or in maintenance during {what}")
    return VaultError(f"Vault at {addr} failed during {what}: {type(e).__name__}")
