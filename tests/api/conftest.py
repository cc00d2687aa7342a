"""A real API on loopback: uvicorn in a thread, real OpenBao, real userpass tokens per role."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.baodev import DevServer
from vault.api.app import create_app
from vault.api.deps import Services
from vault.api.inprocess import serve_in_thread
from vault.api.wiring import ServiceIdentity, build_services
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import auth as vauth
from vault.keys.anchor import VaultKvAnchor
from vault.keys.bootstrap import BootstrapReport, mint_role_token
from vault.settings import load_settings
from vault.store.dataset import Store

DEMO = Path(__file__).resolve().parents[2] / "vault" / "sample_data"
POLICIES = Path(__file__).resolve().parent / "policy.yaml"
USERS = {
    "researcher-a": ["genovault-researcher-a"],
    "researcher-b": ["genovault-researcher-b"],
    "auditor": ["genovault-auditor"],
    "nobody": ["some-unrelated-policy"],
    "limited": ["genovault-limited"],
    "noisy": ["genovault-noisy"],
    "capped": ["genovault-capped"],
}
PASSWORD = "pw-for-tests-only"


@dataclass
class Api:
    url: str
    bao: DevServer
    services: Services
    store: Store
    home: Path
    tokens: dict[str, str]

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def login(self, user: str) -> str:
        return vauth_login(self.bao.addr, user)


def vauth_login(addr: str, user: str) -> str:
    from vault.keys.login import userpass_login

    return userpass_login(addr, user, PASSWORD)


@contextlib.contextmanager
def serve(services: Services) -> Iterator[str]:
    with serve_in_thread(create_app(services)) as url:
        yield url


@pytest.fixture(scope="session")
def api(bao_server: DevServer, bootstrapped: BootstrapReport,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = bao_server.client()
    # a fresh home, so a fresh audit log: the Vault's one audit chain head restarts at seq 1
    # (root only), whatever another test module anchored there before
    VaultKvAnchor(root).reset()
    home = tmp_path_factory.mktemp("api-home")
    store = Store(home / "store")
    ingest_client = bao_server.client(mint_role_token(root, "ingest", ttl="15m"))
    ingest(DEMO / "demo_cohort.vcf.gz", "demo", client=ingest_client, store=store,
           sample_sheet=DEMO / "demo_cohort_samples.tsv", options=IngestOptions(progress=False))
    # real 1000 Genomes calls, for the comparison with bcftools
    ingest(DEMO.parents[1] / "tests" / "data" / "vcf" / "SeqArray__CEU_Exon.vcf.gz", "ceu",
           client=ingest_client, store=store, options=IngestOptions(progress=False))
    # a dataset that exists in the store but that no policy names: must look absent
    ingest(DEMO.parents[1] / "tests" / "data" / "vcf" / "bio2zarr__sample.vcf.gz", "hidden",
           client=ingest_client, store=store, options=IngestOptions(progress=False))
    for user, policies in USERS.items():
        vauth.create_user(root, user, PASSWORD, policies)
    role_id, secret_id = vauth.approle_credentials(root, "service")
    settings = load_settings(home_dir=home, store_dir=home / "store",
                             vault_addr=bao_server.addr, vault_token=bao_server.root_token,
                             service_role_id=role_id, service_secret_id=secret_id)
    identity = ServiceIdentity(bao_server.addr,
                               lambda: vauth.approle_login(bao_server.addr, role_id, secret_id))
    services = build_services(settings, policy_dir=POLICIES, identity=identity, token_ttl_s=1.0)
    with serve(services) as url:
        tokens = {u: vauth_login(bao_server.addr, u) for u in USERS}
        yield Api(url, bao_server, services, store, home, tokens)


@pytest.fixture
def as_user(api: Api) -> Callable[[str | None], httpx.Client]:
    opened: list[httpx.Client] = []

    def make(user: str | None) -> httpx.Client:
        c = api.client(user)
        opened.append(c)
        return c

    yield make  # type: ignore[misc]
    for c in opened:
        c.close()
