"""Suite-wide fixtures.

Vault/OpenBao fixtures first (a real ``bao server -dev`` on loopback — never a mocked KMS);
other fixtures are appended below them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

import tests.support.baodev
import vault.keys.devserver
from tests.support.baodev import DevServer, dev_server
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.keys.bootstrap import BootstrapReport, bootstrap, mint_role_token
from vault.keys.kms import Keyring
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

# --- the `integration` marker is enforced, not trusted ---------------------------------------
#
# `pytest -m "not integration"` must never start OpenBao (nor bcftools/plink2). Three checks:
#  1. before any fixture is set up, a test that is not marked `integration` but whose fixture
#     closure contains an OpenBao fixture fails (so the session server is never started for it);
#  2. while such a test runs, `dev_server` (vault.keys.devserver, tests.support.baodev and the
#     test module's own imported name), `subprocess.Popen` and `os.posix_spawn[p]` refuse to
#     start `bao`, `bcftools` or `plink2` — that covers private dev servers and EmbeddedVault;
#  3. after it ran, fixtures it requested dynamically (request.getfixturevalue) are checked too.
# Every refusal is recorded in GUARD_REFUSALS and summarised at the end of the run.

OPENBAO_FIXTURES = frozenset({
    "bao_server", "bootstrapped", "role_client", "vault_env",
    "ingest_client", "query_client", "ingest_file", "reader",
})
INTEGRATION_BINARIES = frozenset({"bao", "bcftools", "plink2"})
GUARD_REFUSALS: list[str] = []
_GUARDED_TESTS: list[str] = []
_MARK_HINT = "mark it @pytest.mark.integration (or set pytestmark in its module)"


def _is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None


def _refuse(nodeid: str, what: str) -> None:
    GUARD_REFUSALS.append(f"{nodeid}: {what}")
    pytest.fail(f"{nodeid} is not marked integration but {what}: {_MARK_HINT}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_integration(item):
        used = sorted(OPENBAO_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if used:
            _refuse(item.nodeid, f"requests OpenBao fixture(s) {', '.join(used)}")


def _program(args: Any) -> str:
    first = args if isinstance(args, (str, bytes, os.PathLike)) else next(iter(args), "")
    name = os.fsdecode(first)
    if isinstance(args, (str, bytes)):  # a shell-style command line
        name = name.split()[0] if name.split() else ""
    return os.path.basename(name)


@pytest.fixture(autouse=True)
def _integration_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests not marked integration: refuse to start OpenBao, bcftools or plink2."""
    if _is_integration(request.node):
        yield
        return
    nodeid = request.node.nodeid
    _GUARDED_TESTS.append(nodeid)
    real_popen = subprocess.Popen
    real_spawns = {name: getattr(os, name) for name in ("posix_spawn", "posix_spawnp")
                   if hasattr(os, name)}
    real_dev_server = vault.keys.devserver.dev_server

    def check(program: str) -> None:
        if program in INTEGRATION_BINARIES:
            _refuse(nodeid, f"starts {program}")

    class GuardedPopen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
            check(_program(kw.get("executable") or args))
            super().__init__(args, *a, **kw)

    def guarded_spawn(real: Callable[..., int]) -> Callable[..., int]:
        def spawn(path: Any, argv: Any, *a: Any, **kw: Any) -> int:
            check(_program([path]))
            return real(path, argv, *a, **kw)

        return spawn

    def refused_dev_server(*a: object, **kw: object) -> object:
        _refuse(nodeid, "calls dev_server() (an OpenBao dev server)")
        raise AssertionError("unreachable")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "Popen", GuardedPopen)
        for name, real in real_spawns.items():
            mp.setattr(os, name, guarded_spawn(real))
        for module in (vault.keys.devserver, tests.support.baodev,
                       getattr(request, "module", None)):
            if module is not None and getattr(module, "dev_server", None) is real_dev_server:
                mp.setattr(module, "dev_server", refused_dev_server)
        yield
    late = sorted(OPENBAO_FIXTURES.intersection(request.fixturenames))
    if late:
        _refuse(nodeid, f"requested OpenBao fixture(s) {', '.join(late)} dynamically")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _GUARDED_TESTS and not GUARD_REFUSALS:
        return
    terminalreporter.write_line(
        f"integration guard: {len(_GUARDED_TESTS)} unmarked test(s) ran with OpenBao, "
        f"bcftools and plink2 blocked; {len(GUARD_REFUSALS)} refusal(s)"
    )
    for line in GUARD_REFUSALS:
        terminalreporter.write_line(f"  refused: {line}")


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
