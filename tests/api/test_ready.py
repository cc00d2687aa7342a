"""Readiness and Vault outages, against a PRIVATE OpenBao dev server (never the session's).

``/readyz`` answers 503 within 2 s when Vault is sealed or unreachable, says why in
``checks.vault``, and turns back to 200 by itself once Vault is back. A statistic asked while
Vault is sealed, on a cold partition cache, answers 503 quickly (no hang, no 500).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import DEMO, PASSWORD, POLICIES, USERS, serve, vauth_login
from tests.support.baodev import DevServer, dev_server
from vault.api.deps import Services
from vault.api.wiring import ServiceIdentity, build_services
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import auth as vauth
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.settings import load_settings
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

READY_LIMIT_S = 2.0
REGION = "20:1-200000"


@dataclass
class Private:
    bao: DevServer
    url: str
    services: Services
    token: str  # researcher-a's


@contextlib.contextmanager
def private_api(tmp: Path, *, with_demo: bool) -> Iterator[Private]:
    """A dev server of its own, bootstrapped, and an app built on it like the session's."""
    (tmp / "bao").mkdir(parents=True, exist_ok=True)
    with dev_server(tmp / "bao") as bao:
        root = bao.client()
        bootstrap(root)
        home = tmp / "home"
        store = Store(home / "store")
        if with_demo:
            ingest(DEMO / "demo_cohort.vcf.gz", "demo",
                   client=bao.client(mint_role_token(root, "ingest", ttl="15m")), store=store,
                   sample_sheet=DEMO / "demo_cohort_samples.tsv",
                   options=IngestOptions(progress=False))
        vauth.create_user(root, "researcher-a", PASSWORD, USERS["researcher-a"])
        role_id, secret_id = vauth.approle_credentials(root, "service")
        settings = load_settings(home_dir=home, store_dir=home / "store", vault_addr=bao.addr,
                                 vault_token=bao.root_token, service_role_id=role_id,
                                 service_secret_id=secret_id)
        identity = ServiceIdentity(bao.addr,
                                   lambda: vauth.approle_login(bao.addr, role_id, secret_id))
        # token lookups trusted for a minute: the statistic below then meets the sealed Vault
        # on the partition decrypt (the cold cache), not on the caller's token lookup
        services = build_services(settings, policy_dir=POLICIES, identity=identity,
                                  token_ttl_s=60.0)
        with serve(services) as url:
            yield Private(bao, url, services, vauth_login(bao.addr, "researcher-a"))


def unseal_key(bao: DevServer) -> str:
    """DevServer.unseal_key, or read from the log: dev_server() reads the banner as soon as the
    server reports itself unsealed, which can be before the banner reaches the log (then the
    field is empty)."""
    deadline = time.monotonic() + 10
    while not bao.unseal_key and time.monotonic() < deadline:
        for line in bao.log.read_text(errors="replace").splitlines():
            if line.startswith("Unseal Key:"):
                bao.unseal_key = line.split(":", 1)[1].strip()
        time.sleep(0.05)
    assert bao.unseal_key, "the dev server printed no unseal key"
    return bao.unseal_key


def timed_get(url: str, **kw: object) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    r = httpx.get(url, timeout=30, **kw)  # type: ignore[arg-type]
    return r, time.monotonic() - t0


def wait_ready(url: str, within_s: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + within_s
    while True:
        r = httpx.get(f"{url}/readyz", timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def assert_not_ready(r: httpx.Response, took: float, why: str, p: Private) -> None:
    assert r.status_code == 503, r.text
    print(f"\n/readyz: 503 in {took:.3f} s: {r.json()['checks']['vault']}")
    assert took < READY_LIMIT_S, f"/readyz took {took:.2f} s"
    body = r.json()
    assert body["ready"] is False
    vault = body["checks"]["vault"]
    assert vault["ok"] is False and why in vault["why"], vault
    assert body["checks"]["store"]["ok"] is True  # only Vault is down
    assert p.bao.root_token not in r.text and p.token not in r.text
    assert "Traceback" not in r.text


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    with private_api(tmp_path_factory.mktemp("ready"), with_demo=True) as p:
        yield p


@pytest.fixture
def sealed(private: Private) -> Iterator[Private]:
    """``private`` with its Vault sealed for the test; unsealed again afterwards, always."""
    key = unseal_key(private.bao)
    root = private.bao.client()
    root.sys.seal()
    assert root.sys.read_seal_status()["sealed"] is True
    try:
        yield private
    finally:
        root.sys.submit_unseal_key(key)
        assert wait_ready(private.url).status_code == 200


def test_ready__ready_with_a_healthy_private_vault(private: Private) -> None:
    r, took = timed_get(f"{private.url}/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["vault"]["ok"] is True and took < READY_LIMIT_S


def test_ready__sealed_vault_is_503_fast_and_recovers_after_unseal(sealed: Private) -> None:
    r, took = timed_get(f"{sealed.url}/readyz")
    assert_not_ready(r, took, "sealed", sealed)
    sealed.bao.client().sys.submit_unseal_key(unseal_key(sealed.bao))
    back = wait_ready(sealed.url)
    assert back.status_code == 200, back.text
    assert back.json()["checks"]["vault"]["ok"] is True


def test_ready__statistic_on_a_cold_cache_while_sealed_is_503_not_a_hang(
        private: Private) -> None:
    h = {"Authorization": f"Bearer {private.token}"}
    # an answered request first: the token lookup is now cached, and nothing is decrypted
    assert httpx.get(f"{private.url}/v1/datasets", headers=h, timeout=30).status_code == 200
    # no statistic was asked of this app before: no partition decrypted, no data key unwrapped
    assert private.services.query.blocks.bytes == 0, "the partition cache is not cold"
    key = unseal_key(private.bao)
    root = private.bao.client()
    root.sys.seal()
    try:
        r, took = timed_get(f"{private.url}/v1/datasets/demo/frequency",
                            params={"region": REGION}, headers=h)
        assert r.status_code == 503, r.text
        assert took < 5.0, f"the statistic took {took:.2f} s with Vault sealed"
        body = r.json()
        print(f"\nsealed statistic: {r.status_code} in {took:.3f} s: {body}")
        # today it is the audit trail (anchored in Vault) that refuses first, before any
        # decrypt is tried: fail closed either way, and a 503 rather than a 500 or a hang
        assert body["error"] == "unavailable" and "Traceback" not in r.text
        assert private.token not in r.text and private.bao.root_token not in r.text
    finally:
        root.sys.submit_unseal_key(key)
    assert wait_ready(private.url).status_code == 200
    again = httpx.get(f"{private.url}/v1/datasets/demo/frequency", params={"region": REGION},
                      headers=h, timeout=30)
    assert again.status_code == 200, again.text  # recovered without a restart


def test_ready__unreachable_vault_is_503_fast(tmp_path: Path) -> None:
    with private_api(tmp_path, with_demo=False) as p:
        assert wait_ready(p.url).status_code == 200
        os.kill(p.bao.pid, signal.SIGKILL)  # the dev server this test started, by its pid
        deadline = time.monotonic() + 5
        while True:  # the port closes as soon as the kernel reaps the socket
            r, took = timed_get(f"{p.url}/readyz")
            if r.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert_not_ready(r, took, "cannot be reached", p)
        r2, took2 = timed_get(f"{p.url}/readyz")
        assert_not_ready(r2, took2, "cannot be reached", p)
