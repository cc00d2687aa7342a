"""Scale-out workers' Vault tokens (vault.keys.workers): what Vault itself enforces on them,
whatever the minter asks for — the negative tests first.

The minter is the query service's own AppRole identity (``genovault-service``, as with an
external Vault), or a token holding only the right to mint ingest workers' tokens. Every
"cannot" is Vault's answer (403, or 400 for policies outside the token role's set).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest

from tests.support.baodev import DevServer
from tests.support.vaultasserts import forbidden
from vault.errors import ConfigError
from vault.keys import auth as vauth
from vault.keys.acl import query_policy_hcl, with_token_self
from vault.keys.names import WORKER_TOKEN_MAX_TTL_S
from vault.keys.workers import (
    ingest_worker_policy_hcl,
    ingest_worker_policy_name,
    mint_wrapped_ingest_token,
    mint_wrapped_query_token,
    unwrap_token,
)

pytestmark = pytest.mark.integration

QUERY_CAP_S = WORKER_TOKEN_MAX_TTL_S["query-worker"]


@pytest.fixture
def root(bao_server: DevServer, bootstrapped: object) -> hvac.Client:
    return bao_server.client()


@pytest.fixture
def dataset(root: hvac.Client) -> str:
    """A dataset whose worker policies exist (an admin writes them once per dataset: the
    service may not write policies)."""
    ds = f"wk{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_acl_policy(f"genovault-query-{ds}",
                                         with_token_self(query_policy_hcl([ds])))
    root.sys.create_or_update_acl_policy(ingest_worker_policy_name(ds),
                                         ingest_worker_policy_hcl(ds))
    return ds


@pytest.fixture
def service(bao_server: DevServer, root: hvac.Client) -> Iterator[hvac.Client]:
    """The query service's own identity: a fresh AppRole ``genovault-service`` login."""
    rid, sid = vauth.approle_credentials(root, "service")
    client = bao_server.client(vauth.approle_login(bao_server.addr, rid, sid))
    yield client
    with contextlib.suppress(hvac.exceptions.VaultError):  # revoked by the test already
        client.auth.token.revoke_self()


def _worker(bao_server: DevServer, wrapped: str) -> tuple[hvac.Client, dict[str, object]]:
    client, _ttl = unwrap_token(bao_server.addr, wrapped)
    return client, client.auth.token.lookup_self()["data"]


def _alive(bao_server: DevServer, token: str) -> bool:
    try:
        bao_server.client(token).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return False
    return True


def test_query_worker_token__vault_caps_its_ttl_and_refuses_renewal(
        bao_server: DevServer, service: hvac.Client, dataset: str) -> None:
    # the token role the query path mints through ...
    worker, info = _worker(bao_server, mint_wrapped_query_token(service, dataset, "10m",
                                                                "30s")[0])
    role = str(info["role"])
    assert info["policies"] == [f"genovault-query-{dataset}"] and not info["renewable"]
    # ... caps what a (compromised) service asks for: a day, renewable
    resp = service.auth.token.create(role_name=role, policies=[f"genovault-query-{dataset}"],
                                     ttl="24h", explicit_max_ttl="24h", renewable=True,
                                     no_default_policy=True)["auth"]
    assert 0 < resp["lease_duration"] <= QUERY_CAP_S and resp["renewable"] is False
    long_lived = bao_server.client(resp["client_token"])
    looked = long_lived.auth.token.lookup_self()["data"]
    assert 0 < looked["ttl"] <= QUERY_CAP_S and looked["renewable"] is False
    for client in (worker, long_lived):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="not renewable"):
            client.auth.token.renew_self(increment="24h")
    assert role == "genovault-query-worker"


def test_service__cannot_mint_an_orphan_or_a_broader_token(
        bao_server: DevServer, service: hvac.Client, dataset: str) -> None:
    scoped = [f"genovault-query-{dataset}"]
    # no orphan: not by the orphan endpoint, nor without a role, nor through the role
    # query tokens for people are minted with (genovault-query: orphan, renewable to 24 h)
    forbidden(service.auth.token.create_orphan, policies=scoped, ttl="1m")
    forbidden(service.auth.token.create, policies=scoped, ttl="1m")
    forbidden(service.auth.token.create, role_name="genovault-query", policies=scoped,
              ttl="1m")
    for other in ("genovault-ingest", "genovault-admin", "genovault-shredder",
                  "genovault-ingest-worker"):
        forbidden(service.auth.token.create, role_name=other, ttl="1m")
    # asking the worker role for an orphan gives a child all the same
    child = service.auth.token.create(role_name="genovault-query-worker", policies=scoped,
                                      no_parent=True, ttl="1m")["auth"]
    assert child["orphan"] is False
    info = bao_server.client(child["client_token"]).auth.token.lookup_self()["data"]
    assert info["orphan"] is False
    # nothing broader than one dataset's decrypt: not all datasets, not the service's own
    # policy, not an ingest or admin policy, not default or root
    for policies in (["genovault-query"], ["genovault-service"], ["genovault-admin"],
                     ["genovault-ingest"], [f"genovault-ingest-{dataset}"],
                     [ingest_worker_policy_name(dataset)], ["default"], ["root"],
                     [*scoped, "default"], [*scoped, "genovault-service"]):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="must be subset"):
            service.auth.token.create(role_name="genovault-query-worker", policies=policies,
                                      ttl="1m")
    # nor another identity's (identity policies come with an entity alias)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="entity_alias"):
        service.auth.token.create(role_name="genovault-query-worker", policies=scoped,
                                  entity_alias="an-admin", ttl="1m")
    # and no policy at all is no right at all (never the minter's own policies)
    bare = service.auth.token.create(role_name="genovault-query-worker", ttl="1m")["auth"]
    assert bare["policies"] == []


def test_query_worker_token__dies_with_the_service_token_that_minted_it(
        bao_server: DevServer, service: hvac.Client, dataset: str) -> None:
    worker, info = _worker(bao_server, mint_wrapped_query_token(service, dataset, "10m",
                                                                "30s")[0])
    assert info["orphan"] is False
    assert _alive(bao_server, worker.token)
    service.auth.token.revoke_self()  # e.g. the service's AppRole token, revoked on compromise
    assert not _alive(bao_server, worker.token)


@pytest.fixture
def ingest_minter(bao_server: DevServer, root: hvac.Client) -> hvac.Client:
    """A caller allowed only to mint ingest workers' tokens (the old token role name too, so
    that the test shows what the old role gave)."""
    root.sys.create_or_update_acl_policy("test-ingest-worker-minter", """
path "auth/token/create/genovault-ingest-worker" { capabilities = ["update"] }
path "auth/token/create/genovault-ingest" { capabilities = ["update"] }
""")
    token = root.auth.token.create(policies=["test-ingest-worker-minter"],
                                   ttl="10m")["auth"]["client_token"]
    return bao_server.client(token)


def test_ingest_worker_token__child_of_its_minter_capped_and_not_renewable(
        bao_server: DevServer, ingest_minter: hvac.Client, dataset: str) -> None:
    worker, info = _worker(bao_server, mint_wrapped_ingest_token(ingest_minter, dataset, "5m",
                                                                 "30s")[0])
    assert info["policies"] == [ingest_worker_policy_name(dataset)]
    assert info["orphan"] is False and not info["renewable"]
    role = str(info["role"])
    # the role caps a longer, renewable request and allows no full ingest policy
    resp = ingest_minter.auth.token.create(
        role_name=role, policies=[ingest_worker_policy_name(dataset)], ttl="24h",
        explicit_max_ttl="24h", renewable=True)["auth"]
    assert 0 < resp["lease_duration"] <= WORKER_TOKEN_MAX_TTL_S["ingest-worker"]
    assert resp["renewable"] is False
    for policies in ([f"genovault-ingest-{dataset}"], ["genovault-ingest"],
                     [f"genovault-query-{dataset}"]):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="must be subset"):
            ingest_minter.auth.token.create(role_name=role, policies=policies, ttl="1m")
    ingest_minter.auth.token.revoke_self()
    assert not _alive(bao_server, worker.token)
    assert not _alive(bao_server, resp["client_token"])


def test_mint_wrapped__refuses_a_ttl_above_the_worker_cap_before_minting(
        bao_server: DevServer, service: hvac.Client, ingest_minter: hvac.Client,
        dataset: str) -> None:
    with pytest.raises(ConfigError, match="at most 30 minutes"):
        mint_wrapped_query_token(service, dataset, "31m", "30s")
    with pytest.raises(ConfigError, match="at most 60 minutes"):
        mint_wrapped_ingest_token(ingest_minter, dataset, "2h", "30s")
    # the longest allowed still works
    wrapped, _ = mint_wrapped_query_token(service, dataset, "30m", "30s")
    _worker_client, info = _worker(bao_server, wrapped)
    assert 0 < int(str(info["ttl"])) <= QUERY_CAP_S
