"""Attacks through the real HTTP API: a small msprime cohort's members ingested through the
pipeline (real OpenBao), the API on loopback with the benchmark's row policies
(benchmarks/privacy_policies/), attackers as userpass principals. Each answer is checked
against the in-process mechanism (benchmarks.privacy.decide) on the same cell, so the
in-process table of benchmarks/privacy.py is the API's.
"""

from __future__ import annotations

import json
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
        else:  # the member budget: every answer replayed in-process with the API's noise
            assert oracle.shared is False and len(oracle.presence) == len(people)
            assert check["presence_replayed"] == asked
            assert check["presence_replay_mismatches"] == 0


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


def test_http__presence_beyond_400_variants_while_frequency_stays_epsilon_budgeted(
        attacked: tuple) -> None:
    """The default row (member information budget): a rarest-first attacker on member 0
    gets 450 presence answers (no 429, no ε spent), but member 0 is left out of its answers
    once its budget is used: its loss stays <= B; frequency still stops at 400 variants."""
    c, target = attacked
    row = bench.ROWS["default"]
    f = c.ref_af()
    h = ps.het_sites(c, 0)
    h = h[np.argsort(f[h], kind="stable")][:450]
    oracle = api.HttpOracle(target, c, row)
    try:
        ans = oracle.beacon((0, "optimal"), h)
        assert ans.size == 450 and oracle.refused == 0
        cl, name = oracle.client((0, "optimal"))
        assert cl.get("/v1/budget").json()["budget"]["epsilon_spent"] == 0
        q = {"chrom": "1", "pos": int(c.pos[h[-1]]), "ref": "A", "alt": "G"}
        again = cl.get(f"/v1/datasets/{api.DATASET}/presence", params=q)
        body = again.json()
        assert (body["exists"] is True) == bool(ans[-1])  # the stored answer
        d = body["disclosure"]
        assert d["presence_control"] == "member_information"
        assert (d["member_budget_nats"], d["presence_noise_scale"], d["presence_count"]) == \
            row.presence
        assert d["presence_threshold"] == 23 and d["presence_epsilon"] == 0.0
        assert d["epsilon_spent"] == 0.0 and d["new_cells"] == 0
        # nothing of the members' budgets: no count of excluded members, no loss
        assert not [k for k in d if "exclu" in k or "loss" in k or ("member" in k
                    and k != "member_budget_nats")], d
        # the audit record of the answer carries the mechanism too
        log = target.home / "audit" / "audit.jsonl"
        rec = [r for r in map(json.loads, log.read_text().splitlines())
               if r["query_id"] == body["query_id"] and "result" in r][-1]
        rd = rec["result"]["disclosure"]
        assert rd["presence_control"] == "member_information"
        assert rd["member_budget_nats"] == row.presence[0] and rd["epsilon_spent"] == 0.0
        assert rd["presence_count"] == row.presence[2]
        # the Beacon's boolean answer for one allele is the same mechanism: the stored answer
        pos = int(c.pos[h[-1]])
        bq = {"meta": {"apiVersion": "v2.0.0"},
              "query": {"requestParameters": {"g_variant": {
                  "referenceName": "1", "start": [pos - 1], "referenceBases": "A",
                  "alternateBases": "G"}}, "requestedGranularity": "boolean"}}
        br = cl.post(f"/beacon/v2/datasets/{api.DATASET}/g_variants", json=bq)
        assert br.status_code == 200, br.text
        assert br.json()["responseSummary"]["exists"] is bool(ans[-1])
        (ds,) = br.json()["info"]["datasets"]
        assert ds["disclosure"]["presence_control"] == "member_information"
        assert ds["disclosure"]["epsilon_spent"] == 0.0
        # frequency: the same principal, ε cells as before -- 400 variants, then 429
        freq = oracle.af((0, "optimal"), np.arange(600))
        assert freq.size == 400 and oracle.refused == 1
    finally:
        oracle.close()
    losses = target.member_losses(name)
    loss, excluded = losses[0]
    assert excluded and loss <= row.presence[0] + 1e-9  # member 0 no longer counts in its answers
    check = api.check_equal(c, oracle, target)
    assert check["presence_replay_mismatches"] == 0 and check["presence_replayed"] >= 450
    assert check["af_mismatches"] == 0
