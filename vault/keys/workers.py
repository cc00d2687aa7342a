"""Short-lived Vault tokens for scale-out workers (vault.query.distributed).

A worker token is minted through token role ``genovault-query`` with the one policy
``genovault-query-<dataset>`` (transit/decrypt of that dataset's keys, its manifest checks,
token-self), not renewable, and returned **response-wrapped**: the minter only ever holds a
single-use wrapping token, which the worker unwraps itself. Nothing here logs or puts a
token into a message.
"""

from __future__ import annotations

import contextlib
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import VaultDown, VaultUnauthenticated
from vault.keys.client import CONNECT_TIMEOUT_S


def mint_wrapped_query_token(minter: Any, dataset: str, ttl: str,
                              wrap_ttl: str) -> tuple[str, str]:
    """(wrapping token, accessor of the wrapped token) of a new worker token.

    Minted through token role ``genovault-query`` with policy ``genovault-query-<dataset>``
    only (decrypt that dataset's keys, check its manifests, token-self), not renewable,
    ``ttl`` at most. The minter writes that policy if it may (the embedded vault's root);
    otherwise an admin must have written it (docs/scale.md). Both returned strings are
    secrets of a kind: the first unwraps once to the token, the second revokes it."""
    from vault.keys.acl import check_query_policy_name, query_policy_hcl, with_token_self
    from vault.keys.errors import map_error

    policy = check_query_policy_name(f"genovault-query-{dataset}")
    hcl = with_token_self(query_policy_hcl([dataset]))
    with contextlib.suppress(hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath):
        try:
            current = minter.sys.read_acl_policy(policy)["data"]["policy"]
        except hvac.exceptions.InvalidPath:
            current = None
        if current != hcl:
            minter.sys.create_or_update_acl_policy(policy, hcl)
    try:
        resp = minter.auth.token.create(
            role_name="genovault-query", policies=[policy], ttl=ttl, explicit_max_ttl=ttl,
            renewable=False, no_default_policy=True, display_name="genovault-query-worker",
            meta={"genovault_role": "query", "dataset": dataset, "purpose": "dask-worker"},
            wrap_ttl=wrap_ttl)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "minting a Dask worker's query token", addr=minter.url,
                        advice="the service's Vault identity needs "
                               "auth/token/create/genovault-query (docs/scale.md)") from None
    info = resp["wrap_info"]
    return str(info["token"]), str(info.get("wrapped_accessor") or "")


def unwrap_token(addr: str, wrapping_token: str) -> tuple[hvac.Client, float]:
    """(a client holding the unwrapped token, its TTL in seconds). A wrapping token already
    used (intercepted), expired or revoked is refused: VaultUnauthenticated."""
    unwrapper = hvac.Client(url=addr, token=wrapping_token, timeout=CONNECT_TIMEOUT_S)
    try:
        resp = unwrapper.sys.unwrap()
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest,
            hvac.exceptions.Unauthorized):
        raise VaultUnauthenticated(
            "Vault refused to unwrap the worker's credential (used already, expired or "
            "revoked): it may have been intercepted on its way") from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as exc:
        raise VaultDown(f"cannot reach Vault at {addr} to unwrap the worker's credential "
                        f"({type(exc).__name__})") from None
    auth = resp.get("auth") or {}
    token = auth.get("client_token")
    if not token:
        raise VaultUnauthenticated("the wrapped response held no token")
    return (hvac.Client(url=addr, token=token, timeout=CONNECT_TIMEOUT_S),
            float(auth.get("lease_duration") or 0))


def revoke_self(client: hvac.Client) -> None:
    """Best effort (the token expires by its TTL anyway)."""
    with contextlib.suppress(requests.exceptions.RequestException, hvac.exceptions.VaultError):
        client.auth.token.revoke_self()


def revoke_accessors(minter: Any, accessors: list[str]) -> None:
    """Best effort: revoke tokens by accessor (needs auth/token/revoke-accessor)."""
    for a in accessors:
        if a:
            with contextlib.suppress(requests.exceptions.RequestException,
                                     hvac.exceptions.VaultError):
                minter.auth.token.revoke_accessor(a)
