"""Attacks through the real HTTP API: a small msprime cohort's members ingested through the
pipeline (real OpenBao), the API on loopback with the benchmark's row policies
(benchmarks/privacy_policies/), attackers as userpass principals. Each answer is checked
against the in-process mechanism (benchmarks.privacy.decide) on the same cell, so the
in-process table of benchmarks/privacy.py is the API's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks import privacy as bench
from benchmarks import privacy_api as api
from benchmarks import privacy_sim as ps

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """Its own OpenBao: the served API anchors its audit chain at the default path, which
    the session server's other API (tests/api) already uses for its own log."""
    c = ps.simulate(200, 40, 100_000, seed=11)
    with api.vault_under_attack(c, tmp_path_factory.mktemp("attack"), quiet=False) as target:
        yield c, target


def test_http__rarest_first_presence_attack_equals_the_mechanism(attacked: tuple) -> None:
    c, target = attacked
    f = c.ref_af()
    people = [0, 1, 2, c.n, c.n + 1, c.n + 2]
    for name in ("none", "default"):
        row = bench.ROWS[name]
        oracle = api.HttpOracle(target, c, row)
        try:
            stats = []
            for p in people:
                h = ps.het_sites(c, p)
                h = h[np.argsort(f[h], kind="stable")][:25]
                ans = oracle.beacon((p, "optimal"), h)
                assert ans.size == h.size
                stats.append(ps.sb_statistic(ans, f[h], c.n))
        finally:
            oracle.close()
        check = api.check_equal(c, oracle, target)
        asked = sum(len(v) for v in oracle.presence.values())  # distinct per principal
        assert check["presence_checked"] == asked >= 25 * 4
        assert check["presence_mismatches"] == 0, (name, check)
        if name == "none":  # exact answers: the very statistics of the in-process oracle
            ip = bench.InProcess(c, row)
            want = []
            for p in people:
                h = ps.het_sites(c, p)
                h = h[np.argsort(f[h], kind="stable")][:25]
                want.append(ps.sb_statistic(ip.beacon(p, h), f[h], c.n))
            assert stats == pytest.approx(want)
        else:
            assert oracle.shared is False and len(oracle.presence) == len(people)
            assert check["noise_cells"] >= 25 * 4  # cells of stored variants


def test_http__frequency_attack_works_on_exact_answers_and_the_budget_stops_it(
        attacked: tuple) -> None:
    c, target = attacked
    people = list(range(100))
    exact = api.HttpOracle(target, c, bench.ROWS["none"])
    r_exact = bench.homer(c, exact, people, (3000,), np.random.default_rng(8))
    exact.close()
    assert r_exact["homer_answered_3000"] == 3000
    assert r_exact["homer_auc_3000"] >= 0.75  # the attack works through the API
    check = api.check_equal(c, exact, target)
    assert check["af_checked"] == 3000 and check["af_mismatches"] == 0

    noisy = api.HttpOracle(target, c, bench.ROWS["default"])
    r = bench.homer(c, noisy, people, (3000,), np.random.default_rng(8))
    noisy.close()
    assert r["homer_answered_3000"] == 400  # 4 chunks of 100 variants, then 429
    assert noisy.refused == 1
    assert r["homer_auc_3000"] < r_exact["homer_auc_3000"]
    check = api.check_equal(c, noisy, target)
    assert check["af_checked"] == 400 and check["af_mismatches"] == 0
    assert check["uncharged_but_stored"] == 0
    # the API's noise has the in-process mechanism's spread (scale 4: sd of AC ~ 12.6)
    assert check["noise_ac_sd_http"] == pytest.approx(check["noise_ac_sd_inprocess"], rel=0.25)
