"""Identities in Vault: people (userpass), machines (AppRole), and looking a caller's token up.

Secrets (passwords, secret ids, tokens) are arguments and return values only: never logged,
never in a message, repr or exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import ConfigError, VaultUnauthenticated
from vault.keys.client import CONNECT_TIMEOUT_S
from vault.keys.errors import map_error
from vault.keys.names import APPROLE_MOUNT, APPROLE_ROLES, USERPASS_MOUNT

_USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,127}")
#: Lifetime of a userpass login token.
USER_TOKEN_TTL_S = 8 * 3600


def create_user(client: hvac.Client, username: str, password: str,
                policies: Sequence[str]) -> None:
    """Create or update userpass user ``username`` whose login tokens get ``policies``.

    Needs a token allowed ``auth/userpass/users/<username>`` (root or the bootstrap admin).
    For real deployments use OIDC/LDAP instead (docs/vault.md).
    """
    if not _USERNAME_RE.fullmatch(username):
        raise ConfigError(f"invalid user name {username!r}: use a-z, 0-9, '.', '_', '@', '-'")
    if not password:
        raise ConfigError("a userpass user needs a non-empty password")
    try:
        client.auth.userpass.create_or_update_user(
            username, password=password, policies=list(policies), mount_point=USERPASS_MOUNT,
            token_ttl=USER_TOKEN_TTL_S)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"creating userpass user {username!r}", addr=client.url) from None


def approle_credentials(client: hvac.Client, role: str) -> tuple[str, str]:
    """(role_id, a new secret_id) of AppRole role ``genovault-<role>``.

    The secret id is a secret: hand it to the machine over a secure channel, never log it.
    """
    if role not in APPROLE_ROLES:
        raise ConfigError(f"unknown AppRole role {role!r}: use one of {', '.join(APPROLE_ROLES)}")
    name = f"genovault-{role}"
    try:
        role_id = client.auth.approle.read_role_id(name, mount_point=APPROLE_MOUNT)
        secret = client.auth.approle.generate_secret_id(name, mount_point=APPROLE_MOUNT)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"reading AppRole credentials of {name}", addr=client.url,
                        advice=f"the token needs auth/{APPROLE_MOUNT}/role/{name}/role-id (read) "
                               f"and .../secret-id (update)") from None
    return str(role_id["data"]["role_id"]), str(secret["data"]["secret_id"])


def approle_login(addr: str, role_id: str, secret_id: str, *,
                  timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """Log in with AppRole; return the token (a secret)."""
    client = hvac.Client(url=addr, timeout=timeout_s)
    try:
        resp = client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                         mount_point=APPROLE_MOUNT, use_token=False)
    except hvac.exceptions.InvalidRequest:
        raise VaultUnauthenticated(
            f"Vault at {addr} refused the AppRole login (invalid or expired role id / secret "
            "id): ask an admin for a new secret id") from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "AppRole login", addr=addr) from None
    return str(resp["auth"]["client_token"])


def lookup_token(addr: str, token: str, *,
                 timeout_s: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """Who the caller is, asked of Vault with the caller's own token (``lookup-self``).

    Returns ``entity_id``, ``display_name``, ``policies`` (token and identity policies, sorted,
    deduplicated), ``token_policies``, ``identity_policies``, ``groups`` (identity group names;
    a group's id where the token may not read the group — OpenBao's default policy reads the
    own entity but not groups; ``None`` if it may not read its own entity), ``meta``, ``ttl``
    (seconds) and
    ``expire_time`` (RFC 3339, or ``None`` for a token that never expires). Never the token.

    Raises VaultUnauthenticated (401/403: invalid, expired or revoked token), VaultDown
    (unreachable, sealed, or no answer within ``timeout_s`` for one of its calls).
    """
    client = hvac.Client(url=addr, token=token, timeout=timeout_s)
    try:
        data = client.auth.token.lookup_self()["data"]
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
        raise VaultUnauthenticated(
            f"Vault at {addr} rejected the token (invalid, expired or revoked): log in "
            "again") from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "token lookup", addr=addr) from None
    token_policies = sorted(data.get("policies") or [])
    identity_policies = sorted(data.get("identity_policies") or [])
    entity_id = str(data.get("entity_id") or "")
    return {
        "entity_id": entity_id,
        "display_name": str(data.get("display_name") or ""),
        "policies": sorted(set(token_policies) | set(identity_policies)),
        "token_policies": token_policies,
        "identity_policies": identity_policies,
        "groups": _groups(client, entity_id) if entity_id else [],
        "meta": dict(data.get("meta") or {}),
        "ttl": int(data.get("ttl") or 0),
        "expire_time": data.get("expire_time") or None,
    }


def _groups(client: hvac.Client, entity_id: str) -> list[str] | None:
    """Names of the entity's identity groups, if its own token may read them (else None).

    lookup-self does not name groups; reading them needs e.g. a templated policy
    ``identity/entity/id/{{identity.entity.id}}`` + ``identity/group/id/*`` (docs/vault.md).
    """
    try:
        entity = client.adapter.get(f"/v1/identity/entity/id/{entity_id}")["data"]
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError):
        return None
    names: list[str] = []
    for gid in entity.get("group_ids") or []:
        try:
            names.append(str(client.adapter.get(f"/v1/identity/group/id/{gid}")["data"]["name"]))
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError):
            names.append(str(gid))
    return sorted(names)
