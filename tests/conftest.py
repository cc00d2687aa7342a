"""Suite-wide fixtures.

Vault/OpenBao fixtures first (a real ``bao server -dev`` on loopback — never a mocked KMS);
other fixtures are appended below them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pytest

from tests.support.baodev import DevServer, dev_server
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.bootstrap import BootstrapReport, bootstrap, mint_role_token
from vault.keys.kms import Keyring
from vault.store.dataset import Store
from vault.store.reader import DatasetReader


@pytest.fixture(scope="session")
def bao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A real OpenBao dev server for the whole run: ``.addr``, ``.root_token`` (random per run)."""
    with dev_server(tmp_path_factory.mktemp("bao-dev")) as server:
        yield server


@pytest.fixture(scope="session")
def bootstrapped(bao_server: DevServer) -> BootstrapReport:
    """``bao_server`` after ``bootstrap()``: Transit, GenoVault policies and roles in place."""
    return bootstrap(bao_server.client())


@pytest.fixture
def role_client(
    bao_server: DevServer, bootstrapped: BootstrapReport
) -> Callable[[str], hvac.Client]:
    """Factory: ``role_client("ingest"|"query"|"admin")`` → hvac client with a fresh role token."""

    def make(role: str) -> hvac.Client:
        return bao_server.client(mint_role_token(bao_server.client(), role, ttl="15m"))

    return make


@pytest.fixture
def vault_env(
    monkeypatch: pytest.MonkeyPatch, bao_server: DevServer, bootstrapped: BootstrapReport
) -> DevServer:
    """VAULT_ADDR/VAULT_TOKEN (root) of the bootstrapped server, for code calling connect()."""
    monkeypatch.setenv("VAULT_ADDR", bao_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", bao_server.root_token)
    return bao_server


# --- fixtures appended by others go below this line ------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty dataset store in a temporary folder."""
    return Store(tmp_path / "store")


@pytest.fixture
def ingest_client(role_client: Callable[[str], hvac.Client]) -> hvac.Client:
    """A client holding an ingest-role token (encrypt only)."""
    return role_client("ingest")


@pytest.fixture
def query_client(role_client: Callable[[str], hvac.Client]) -> hvac.Client:
    """A client holding a query-role token (decrypt)."""
    return role_client("query")


@pytest.fixture
def ingest_file(store: Store, ingest_client: hvac.Client) -> Callable[..., IngestResult]:
    """``ingest_file(path, dataset, **options)`` into the ``store`` fixture with the ingest role."""

    def run(path: Path, dataset: str, sample_sheet: Path | None = None,
            **options: object) -> IngestResult:
        opts = IngestOptions(progress=False, **options)  # type: ignore[arg-type]
        return ingest(path, dataset, client=ingest_client, store=store,
                      sample_sheet=sample_sheet, options=opts)

    return run


@pytest.fixture
def reader(store: Store, query_client: hvac.Client) -> Callable[[str], DatasetReader]:
    """``reader(dataset)``: a DatasetReader over the ``store`` fixture with the query role."""

    def make(dataset: str) -> DatasetReader:
        return DatasetReader(store, dataset, Keyring(query_client, dataset))

    return make
