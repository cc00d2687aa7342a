"""The client address in the audit trail and the anonymous rate limits is the TCP peer's,
unless the operator names a reverse proxy (GENOVAULT_TRUSTED_PROXIES)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import Api
from vault.api.app import create_app
from vault.api.guard import _hash
from vault.api.inprocess import serve_in_thread
from vault.audit.paths import audit_log_path
from vault.settings import Settings

pytestmark = pytest.mark.integration

SPOOFED = "203.0.113.9"


def _remote_of(api: Api, qid: str) -> set[str | None]:
    path = audit_log_path(api.services.settings)
    return {r["client"]["remote"] for r in
            (json.loads(x) for x in path.read_text().splitlines())
            if r.get("query_id") == qid and "client" in r}


def _ask(url: str, token: str) -> str:
    r = httpx.get(url + "/v1/datasets", headers={"Authorization": f"Bearer {token}",
                                                 "X-Forwarded-For": SPOOFED}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["X-Query-Id"] if "X-Query-Id" in r.headers else r.json()["query_id"]


def test_client_address__a_forwarded_header_is_not_believed_by_default(api: Api) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so any process
    on the host could write another client address into the audit trail (and take a fresh
    anonymous rate limit per request). The API now believes it from no one by default."""
    qid = _ask(api.url, api.tokens["researcher-a"])
    assert _remote_of(api, qid) == {_hash("127.0.0.1")}


def test_client_address__a_named_proxy_is_believed(api: Api) -> None:
    with serve_in_thread(create_app(api.services), trusted_proxies="127.0.0.1") as url:
        qid = _ask(url, api.tokens["researcher-a"])
    assert _remote_of(api, qid) == {_hash(SPOOFED)}


def test_client_address__the_setting_takes_addresses_only() -> None:
    assert Settings(trusted_proxies="10.0.0.1, 10.0.0.2").trusted_proxies
    with pytest.raises(ValueError):
        Settings(trusted_proxies="*")
