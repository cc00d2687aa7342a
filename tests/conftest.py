"""Suite-wide fixtures.

Vault/OpenBao fixtures first (a real ``bao server -dev`` on loopback — never a mocked KMS);
other fixtures are appended below them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import hvac
import pytest

from tests.baodev import DevServer, dev_server
from vault.bootstrap import BootstrapReport, bootstrap, mint_role_token


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
