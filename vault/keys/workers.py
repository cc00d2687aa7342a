"""Short-lived Vault tokens for scale-out workers (vault.query.distributed and
vault.ingest.distributed).

A worker token is minted through token role ``genovault-query-worker`` with the one policy
``genovault-query-<dataset>`` (transit/decrypt of that dataset's keys, its manifest checks,
token-self) and returned **response-wrapped**: the minter only ever holds a single-use
wrapping token, which the worker unwraps itself. An ingest worker's token (token role
``genovault-ingest-worker``, policy ``genovault-ingest-<dataset>.encrypt``) may only encrypt
with that dataset's keys. The worker token roles (vault.keys.bootstrap) make Vault enforce
what the minter asks for: the token is a child of the minting token (revoked with it), not
renewable, and lives at most WORKER_TOKEN_MAX_TTL_S (30 minutes for a query, 60 for an
ingest); a longer ``ttl`` is refused here before anything is minted. Nothing here logs or
puts a token into a message.
"""

from __future__ import annotations

import contextlib
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import ConfigError, VaultDown, VaultUnauthenticated
from vault.keys.client import CONNECT_TIMEOUT_S
from vault.keys.names import WORKER_TOKEN_MAX_TTL_S


def check_worker_ttl(role: str, ttl: str) -> str:
    """``ttl`` if a ``role`` worker token (``query`` or ``ingest``) may live that long, else
    ConfigError: Vault caps it at WORKER_TOKEN_MAX_TTL_S anyway, and a worker whose token
    died before the work ended would fail it late."""
    from vault.query.distributed import _seconds

    cap = WORKER_TOKEN_MAX_TTL_S[f"{role}-worker"]
    if _seconds(ttl) > cap:
        what = ("GENOVAULT_DASK_CREDENTIAL_TTL" if role == "query"
                else "--ttl-minutes with --dask")
        raise ConfigError(f"a Dask worker's {role} token lives at most {cap // 60} minutes "
                          f"(token role genovault-{role}-worker), not {ttl}: set {what} to "
                          f"{cap // 60}m or less")
    return ttl


def mint_wrapped_query_token(minter: Any, dataset: str, ttl: str,
                              wrap_ttl: str) -> tuple[str, str]:
    """(wrapping token, accessor of the wrapped token) of a new worker token.

    Minted through token role ``genovault-query-worker`` with policy
    ``genovault-query-<dataset>`` only (decrypt that dataset's keys, check its manifests,
    token-self): a child of ``minter``'s token, not renewable, ``ttl`` at most (30 minutes at
    most). The minter writes that policy if it may (the embedded vault's root);
    otherwise an admin must have written it (docs/scale.md). Both returned strings are
    secrets of a kind: the first unwraps once to the token, the second revokes it."""
    from vault.keys.acl import check_query_policy_name, query_policy_hcl, with_token_self

    policy = check_query_policy_name(f"genovault-query-{dataset}")
    return _mint_wrapped(minter, "query", policy, with_token_self(query_policy_hcl([dataset])),
                         dataset, ttl, wrap_ttl, "a Dask worker's query token")


#: an ingest worker's policy: ``genovault-ingest-<dataset>.encrypt``. Dataset ids hold no dot,
#: so it can never be the full ingest policy of another dataset; the token role
#: ``genovault-ingest-worker`` allows these policies only (``genovault-ingest-*.encrypt``).
INGEST_WORKER_POLICY_SUFFIX = ".encrypt"

_INGEST_WORKER_HCL = """# GenoVault ingest worker for dataset {dataset} only: wrap data keys
# (transit/encrypt of the dataset's existing keys, with a bound file's derivation context),
# nothing else: no key creation or metadata, no pseudonyms, no sample registry, no manifest
# signing, no decrypt.
path "transit/encrypt/genovault.{dataset}.*" {{
  capabilities = ["update"]
  allowed_parameters = {{
    "plaintext" = []
    "context"   = []
  }}
}}
"""


def ingest_worker_policy_name(dataset: str) -> str:
    from vault.ids import check_dataset_id
    from vault.keys.acl import INGEST_POLICY_PREFIX

    return INGEST_POLICY_PREFIX + check_dataset_id(dataset) + INGEST_WORKER_POLICY_SUFFIX


def ingest_worker_policy_hcl(dataset: str) -> str:
    """HCL of an ingest worker's policy: encrypt with ``dataset``'s keys, and token-self."""
    from vault.ids import check_dataset_id
    from vault.keys.acl import with_token_self

    return with_token_self(_INGEST_WORKER_HCL.format(dataset=check_dataset_id(dataset)))


def mint_wrapped_ingest_token(minter: Any, dataset: str, ttl: str,
                               wrap_ttl: str) -> tuple[str, str]:
    """(wrapping token, accessor) of a new ingest worker token: through token role
    ``genovault-ingest-worker``, with the one policy ``genovault-ingest-<dataset>.encrypt``
    (transit/encrypt of that dataset's existing keys, token-self), a child of ``minter``'s
    token, not renewable, ``ttl`` at most (60 minutes at most), response-wrapped. The
    minter writes the policy if it may (the embedded vault's root); otherwise an admin must
    have written it (docs/ingest.md)."""
    return _mint_wrapped(minter, "ingest", ingest_worker_policy_name(dataset),
                         ingest_worker_policy_hcl(dataset), dataset, ttl, wrap_ttl,
                         "a Dask worker's ingest token")


def _mint_wrapped(minter: Any, role: str, policy: str, hcl: str, dataset: str, ttl: str,
                  wrap_ttl: str, what: str) -> tuple[str, str]:
    from vault.keys.errors import map_error

    check_worker_ttl(role, ttl)
    token_role = f"genovault-{role}-worker"
    with contextlib.suppress(hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath):
        try:
            current = minter.sys.read_acl_policy(policy)["data"]["policy"]
        except hvac.exceptions.InvalidPath:
            current = None
        if current != hcl:
            minter.sys.create_or_update_acl_policy(policy, hcl)
    try:
        resp = minter.auth.token.create(
            role_name=token_role, policies=[policy], ttl=ttl, explicit_max_ttl=ttl,
            renewable=False, no_default_policy=True, display_name=f"genovault-{role}-worker",
            meta={"genovault_role": role, "dataset": dataset, "purpose": "dask-worker"},
            wrap_ttl=wrap_ttl)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"minting {what}", addr=minter.url,
                        advice=f"the minting identity needs auth/token/create/{token_role} "
                               f"(run `genovault vault bootstrap` if that token role is "
                               f"missing) and the policy {policy} must exist "
                               "(docs/scale.md)") from None
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
    """Best effort: revoke tokens by accessor (needs auth/token/revoke-accessor, which
    genovault-service has). A token it cannot revoke still dies with its TTL, or with the
    minting token (it is that token's child)."""
    for a in accessors:
        if a:
            with contextlib.suppress(requests.exceptions.RequestException,
                                     hvac.exceptions.VaultError):
                minter.auth.token.revoke_accessor(a)
