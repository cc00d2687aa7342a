"""One served GenoVault for the reliability tests: a ``genovault serve`` subprocess, the
persistent embedded OpenBao behind a SlowProxy (delay 0 unless a test sets it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.load import warm_up
from tests.support.served import Served, served

#: the registered tier's budget here: small, so that load runs exhaust it (429s) too
DP_BUDGET = 20.0
#: the API's Vault timeout here (GENOVAULT_VAULT_TIMEOUT; the default is 5 s): short, so that
#: the slow-Vault test can tell a bounded wait from one that lasts as long as Vault is slow
VAULT_TIMEOUT_S = 2.0


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("reliability"), proxy=True, dp_budget=DP_BUDGET,
                vault_timeout_s=VAULT_TIMEOUT_S) as s:
        warm_up(s)  # compiled kernels, filled caches: the tests time what they measure
        yield s


@pytest.fixture
def healthy(api: Served) -> Iterator[Served]:
    """``api`` with its API running, Vault unsealed and no delay, before and after the test."""
    restore(api)
    yield api
    restore(api)


def restore(s: Served) -> None:
    assert s.proxy is not None
    s.proxy.delay_s = 0.0
    if s.vault.status().sealed is not False:
        s.vault.up()
    if s.proc is None or s.proc.poll() is not None:
        s.start_api()
        warm_up(s)
    s.wait_ready(60)
