"""The registered tier through real HTTP: noisy counts, ε per answer, repeats, budgets."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import Api
from tests.support.demo import rare_snvs, unstored_positions
from vault.audit.paths import audit_log_path

pytestmark = pytest.mark.integration

Client = Callable[[str | None], httpx.Client]
REGION = "20:1-200000"


def _records(api: Api, qid: str) -> list[dict]:
    path = audit_log_path(api.services.settings)
    return [r for r in (json.loads(x) for x in path.read_text().splitlines())
            if r["query_id"] == qid]


def test_dp__answer_reports_epsilon_and_is_audited(api: Api, as_user: Client) -> None:
    c = as_user("researcher-b")
    before = c.get("/v1/budget").json()["budget"]
    r = c.get("/v1/datasets/demo/frequency", params={"region": "20:1-60000", "limit": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    d = body["disclosure"]
    assert d["noise"] == "discrete_laplace" and d["epsilon_per_query"] == 0.25
    assert d["noise_scale"] == 4.0
    assert d["epsilon_spent"] == pytest.approx(0.25 * d["new_cells"])
    assert d["epsilon_remaining"] == pytest.approx(before["epsilon_remaining"]
                                                   - d["epsilon_spent"])
    assert any("noisy counts" in rule for rule in d["rules"])
    done = [x for x in _records(api, body["query_id"]) if "result" in x]
    assert done[-1]["result"]["disclosure"]["epsilon_spent"] == d["epsilon_spent"]
    assert done[-1]["result"]["disclosure"]["noise"] == "discrete_laplace"
    after = c.get("/v1/budget").json()["budget"]
    assert after["epsilon_spent"] == pytest.approx(before["epsilon_spent"] + d["epsilon_spent"])
    # derived statistics come from the noisy counts
    for row in body["variants"]:
        o = row["overall"]
        if o.get("ac") is not None and o.get("an"):
            assert o["af"] == pytest.approx(o["ac"] / o["an"])


def test_dp__repeat_is_the_same_answer_and_free(as_user: Client) -> None:
    c = as_user("researcher-b")
    params = {"region": "20:60000-120000", "limit": 30}
    a = c.get("/v1/datasets/demo/frequency", params=params).json()
    b = c.get("/v1/datasets/demo/frequency", params=params).json()
    assert a["variants"] == b["variants"]
    assert b["disclosure"]["epsilon_spent"] == 0.0 and b["disclosure"]["new_cells"] == 0
    # overlapping or differently shaped questions reuse the same noisy cells
    g = c.get("/v1/datasets/demo/genotype-counts", params=params).json()
    assert g["disclosure"]["epsilon_spent"] == 0.0
    for fa, gc in zip(a["variants"], g["variants"], strict=True):
        if fa["overall"].get("ac") is not None and gc["overall"].get("het") is not None:
            assert fa["overall"]["ac"] == gc["overall"]["het"] + 2 * gc["overall"]["hom_alt"]


def test_dp__noise_is_real(as_user: Client) -> None:
    exact = as_user("researcher-a").get("/v1/datasets/demo/genotype-counts",
                                        params={"region": REGION, "limit": 200}).json()
    noisy = as_user("researcher-b").get("/v1/datasets/demo/genotype-counts",
                                        params={"region": REGION, "limit": 200}).json()
    ex = {(v["pos"], v["alt"]): v["overall"] for v in exact["variants"]}
    diffs = [abs(v["overall"]["het"] - ex[(v["pos"], v["alt"])]["het"])
             for v in noisy["variants"] if (v["pos"], v["alt"]) in ex
             and v["overall"].get("het") is not None
             and ex[(v["pos"], v["alt"])].get("het") is not None]
    assert len(diffs) > 20 and sum(d > 0 for d in diffs) > len(diffs) / 2


def test_dp__presence_is_noisy_and_costs_budget(as_user: Client) -> None:
    c = as_user("researcher-b")
    row = as_user("researcher-a").get("/v1/datasets/demo/frequency",
                                      params={"region": REGION, "limit": 50}).json()
    common = max(row["variants"], key=lambda v: v["overall"].get("ac") or 0)
    q = {k: common[k] for k in ("chrom", "pos", "ref", "alt")}
    r = c.get("/v1/datasets/demo/presence", params=q).json()
    assert r["exists"] is True and r["disclosure"]["presence_threshold"] > 11
    assert r["disclosure"]["epsilon_spent"] in (0.0, 0.25)
    # An absent allele is noised from zero counts, so a "present" is possible but rare:
    # its probability follows from the disclosed threshold and noise scale. Ask 40 absent
    # alleles and allow as many "present" answers as that probability makes plausible
    # (binomial tail < 1e-6); a threshold without the noise margin would give ~half.
    threshold = r["disclosure"]["presence_threshold"]
    p_yes = _false_presence(threshold, r["disclosure"]["noise_scale"])
    assert 0 < p_yes < 0.02
    answers = []
    for pos in range(7, 47):
        a = c.get("/v1/datasets/demo/presence",
                  params={"chrom": "20", "pos": pos, "ref": "A", "alt": "T"}).json()
        assert a["disclosure"]["epsilon_spent"] == 0.25, a["disclosure"]
        assert a["disclosure"]["presence_threshold"] == threshold
        answers.append(a["exists"])
    assert set(answers) <= {True, None}  # never a "no": absent and rare look the same
    assert answers.count(True) <= _binomial_upper(len(answers), p_yes, 1e-6), answers


def _false_presence(threshold: int, scale: float) -> float:
    """P(max(0, Z1) + 2 max(0, Z2) >= threshold) for independent discrete Laplace Z1, Z2 of
    ``scale``: the chance that an allele no one carries is reported present."""
    alpha = math.exp(-1 / scale)
    top = threshold + 1
    pmf = [(1 - alpha) / (1 + alpha) * alpha ** z for z in range(top)]
    pmf[0] += alpha / (1 + alpha)  # the negative tail, clamped to 0
    below = sum(pmf[h] * pmf[a] for h in range(top) for a in range(top)
                if h + 2 * a < threshold)
    return 1 - below


def _binomial_upper(n: int, p: float, tail: float) -> int:
    """The smallest c with P(Binomial(n, p) > c) < ``tail``."""
    cdf = 0.0
    for c in range(n + 1):
        cdf += math.comb(n, c) * p ** c * (1 - p) ** (n - c)
        if 1 - cdf < tail:
            return c
    return n


def test_dp__a_rare_allele_costs_and_lists_like_an_absent_one(as_user: Client) -> None:
    """Membership oracle on the registered tier: a list of variants charged only the stored
    ones (a rare allele cost ε, an allele the cohort does not hold nothing), and a rare
    variant whose noisy AC came out 0 was listed (a third of the singletons) while an absent
    one never is. Now every requested variant costs its cells, stored or not, and a noisy
    AC or REF count of 0 is not listed."""
    c = as_user("researcher-b")
    rare = rare_snvs(600_000, 40)
    absent = [(ch, pos, ref, next(b for b in "ACGT" if b not in (ref, alt)))
              for ch, pos, ref, alt in rare]

    def ask(v: tuple[str, int, str, str], group_by: str | None = None) -> dict:
        r = c.post("/v1/datasets/demo/frequency", json={
            "variants": [dict(zip(("chrom", "pos", "ref", "alt"), v, strict=True))],
            "group_by": group_by})
        assert r.status_code == 200, r.text
        return r.json()

    listed = []
    for a, b in zip(rare, absent, strict=True):
        got = [ask(a), ask(b)]
        assert [g["disclosure"]["new_cells"] for g in got] == [1, 1], (a, b)
        assert got[0]["disclosure"]["epsilon_spent"] == got[1]["disclosure"]["epsilon_spent"]
        assert got[1]["variants"] == []  # an absent allele is never listed
        listed += got[0]["variants"]
    for row in listed:  # listed only when both noisy allele counts reach k
        o = row["overall"]
        assert o["ac"] >= 11 and o["an"] - o["ac"] >= 11, row
    # a list of several, with groups: the cost is one cell per variant and group either way
    r = c.post("/v1/datasets/demo/frequency", json={
        "variants": [dict(zip(("chrom", "pos", "ref", "alt"), v, strict=True))
                     for v in rare_snvs(800_000, 3)], "limit": 1}).json()
    assert r["disclosure"]["new_cells"] == 3


def test_dp__a_region_over_a_rare_variant_costs_what_an_empty_one_costs(
        as_user: Client) -> None:
    """Site oracle on the registered tier: a region charged every stored variant it reached,
    rare ones included, so a region of one position cost ε exactly when a variant is stored
    there (`new_cells` 1 for a singleton's position, 0 for an empty one). A variant rare by
    its exact counts is never listed, so it is now neither noised nor charged: the cost of a
    region is the number of variants its answer lists (or, noisy 0, hides). Association:
    tests/test_query_service.py."""
    c = as_user("researcher-b")
    rare = rare_snvs(900_000, 12)
    empty = unstored_positions("20", 900_001, 3)
    asked = 0
    for ch, pos, _, _ in rare + [("20", p, "", "") for p in empty]:
        for route in ("frequency", "genotype-counts"):
            r = c.get(f"/v1/datasets/demo/{route}", params={"region": f"{ch}:{pos}-{pos}"})
            assert r.status_code == 200, r.text
            body = r.json()
            if body["variants"]:  # another allele, listable, stored at the same position
                continue
            asked += 1
            assert body["disclosure"]["new_cells"] == 0, (route, pos, body["disclosure"])
            assert body["disclosure"]["epsilon_spent"] == 0.0
    assert asked >= 20
    # a wide region costs its listed variants (and those a noisy 0 hides), not its rare ones
    r = c.get("/v1/datasets/demo/frequency",
              params={"region": "20:1000000-1100000", "limit": 500}).json()
    exact = as_user("researcher-a").get("/v1/datasets/demo/frequency", params={
        "region": "20:1000000-1100000", "limit": 500}).json()
    assert not r["truncated"] and not exact["truncated"]
    common = [v for v in exact["variants"] if v["overall"]["ac"] is not None]
    assert r["count"] <= r["disclosure"]["new_cells"] <= len(exact["variants"])
    assert r["disclosure"]["new_cells"] >= len(common)


def test_dp__unsupported_statistic_is_refused_for_the_registered_tier(as_user: Client) -> None:
    r = as_user("noisy").get("/v1/datasets/demo/sfs")
    assert r.status_code == 403 and "dp_unsupported:sfs" in r.json()["detail"]


def test_dp__budget_is_exhausted_with_a_clear_refusal_even_in_parallel(
        api: Api, as_user: Client) -> None:
    c = as_user("noisy")  # ε 0.1 per variant, budget 10: 100 new variants
    start = c.get("/v1/budget").json()["budget"]
    assert start["epsilon_budget"] == 10

    def ask(i: int) -> httpx.Response:
        with api.client("noisy") as cc:
            return cc.get("/v1/datasets/demo/presence",
                          params={"chrom": "20", "pos": 1000 + i, "ref": "A", "alt": "C"})

    with ThreadPoolExecutor(8) as pool:
        res = list(pool.map(ask, range(130)))
    ok = [r for r in res if r.status_code == 200]
    refused = [r for r in res if r.status_code == 429]
    assert len(ok) + len(refused) == 130
    assert len(ok) == round((10 - start["epsilon_spent"]) / 0.1)
    end = c.get("/v1/budget").json()["budget"]
    assert end["epsilon_spent"] == pytest.approx(10) and end["epsilon_remaining"] == 0
    body = refused[0].json()
    assert body["detail"].startswith("budget_exhausted")
    assert int(refused[0].headers["retry-after"]) >= 1
    rec = [x for x in _records(api, body["query_id"]) if "result" in x][-1]
    assert rec["result"]["status"] == 429 and rec["result"]["reasons"] == ["budget_exhausted"]
    # an answer already released is still free to repeat
    again = ask(0)
    assert again.status_code == 200 and again.json()["disclosure"]["epsilon_spent"] == 0.0


def test_dp__budget_show_cli_lists_principals(api: Api) -> None:
    from click.testing import CliRunner

    from tests.api.conftest import POLICIES
    from vault.cli.budget import budget_group
    from vault.keys import auth as vauth
    from vault.keys.bootstrap import mint_role_token
    from vault.privacy.ledger import ledger_path

    root = api.bao.client()
    role_id, secret_id = vauth.approle_credentials(root, "service")
    env = {"VAULT_ADDR": api.bao.addr, "GENOVAULT_HOME": str(api.home),
           "GENOVAULT_POLICY_DIR": str(POLICIES), "GENOVAULT_SERVICE_ROLE_ID": role_id,
           "GENOVAULT_SERVICE_SECRET_ID": secret_id,
           "VAULT_TOKEN": mint_role_token(root, "admin", ttl="5m")}  # budget_read: admin
    out = CliRunner().invoke(budget_group, ["show", "--ledger",
                                            str(ledger_path(api.services.settings.home)),
                                            "--json"], env=env)
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in out.output.splitlines()]
    names = " ".join(str(r["display_name"]) for r in rows)
    assert "noisy" in names and "researcher-b" in names
    assert all(r["epsilon_total"] > 0 and r["charges"] > 0 for r in rows)
    rec = json.loads(audit_log_path(api.services.settings).read_text().splitlines()[-1])
    assert rec["request"]["action"] == "budget_read" and rec["result"]["rows"] == len(rows)


@pytest.mark.parametrize("user", ["researcher-a", "researcher-b"])
def test_dp__a_full_page_is_not_truncated_by_a_region_that_lists_nothing(
        as_user: Client, user: str) -> None:
    """Site oracle through paging, both tiers: a page that was full said ``truncated`` as
    soon as any further region (or partition) had a stored variant, listed or not, so
    ``regions: [<a common variant>, <P>]`` with ``limit: 1`` was truncated exactly when a
    variant is stored at P — a rare one included — and the next page was empty. A page is
    truncated only when a variant it would list follows."""
    c = as_user(user)
    exact = as_user("researcher-a")
    first = exact.get("/v1/datasets/demo/frequency",
                      params={"region": "20:1-200000", "limit": 1}).json()["variants"][0]
    anchor = f"20:{first['pos']}-{first['pos']}"
    rare = [r for r in rare_snvs(700_000, 8)
            if not exact.get("/v1/datasets/demo/frequency",
                             params={"region": f"20:{r[1]}-{r[1]}"}).json()["variants"]]
    empty = unstored_positions("20", 700_001, 3)
    assert len(rare) >= 4
    seen = []
    for pos in [r[1] for r in rare] + empty:
        for route in ("frequency", "genotype-counts"):
            r = c.post(f"/v1/datasets/demo/{route}",
                       json={"regions": [anchor, f"20:{pos}-{pos}"], "limit": 1})
            assert r.status_code == 200, r.text
            body = r.json()
            assert [v["pos"] for v in body["variants"]] == [first["pos"]], body
            seen.append((pos in empty, route, body["truncated"], body["next_cursor"]))
            # a list naming the rare allele (or an absent one at an empty position)
            ref, alt = next(((x[2], x[3]) for x in rare if x[1] == pos), ("A", "C"))
            r = c.post(f"/v1/datasets/demo/{route}", json={
                "variants": [{"chrom": "20", "pos": first["pos"], "ref": first["ref"],
                              "alt": first["alt"]},
                             {"chrom": "20", "pos": pos, "ref": ref, "alt": alt}],
                "limit": 1})
            assert r.status_code == 200, r.text
            body = r.json()
            seen.append((pos in empty, route, body["truncated"], body["next_cursor"]))
    assert {s[2:] for s in seen} == {(False, None)}, seen


def test_dp__a_key_rotation_draws_no_cell_again(api: Api, as_user: Client) -> None:
    """Averaging oracle on the registered tier: the ledger kept a principal's noisy cells
    and presence member budgets per dataset *commit*, and a key rotation (which re-wraps keys
    and changes no genotype) commits a new manifest, so after every rotation the same
    principal got every cell drawn again — fresh noise on the same exact counts — and fresh
    member budgets for presence answers that cost no ε. Cells and presence answers are now
    kept per dataset content: a rotation changes the version an answer names, not its
    noise."""
    import sqlite3

    from vault.keys import lifecycle

    c = as_user("researcher-b")
    region = "20:400000-402000"
    first = c.get("/v1/datasets/demo/frequency", params={"region": region}).json()
    assert first["variants"], first
    v = first["variants"][0]
    asked = {"chrom": v["chrom"], "pos": v["pos"], "ref": v["ref"], "alt": v["alt"]}
    p1 = c.get("/v1/datasets/demo/presence", params=asked)
    assert p1.status_code == 200, p1.text
    ledger = api.services.guard.ledger
    assert ledger is not None

    def presence_answers() -> int:
        con = sqlite3.connect(ledger.path)
        try:
            return int(con.execute("SELECT count(*) FROM presence_answers").fetchone()[0])
        finally:
            con.close()

    before = presence_answers()
    lifecycle.rotate(api.store, "demo", api.bao.client(), data_class="all")
    again = c.get("/v1/datasets/demo/frequency", params={"region": region}).json()
    assert again["dataset_version"] != first["dataset_version"]  # a new commit was seen
    assert again["disclosure"]["new_cells"] == 0, again["disclosure"]
    assert again["disclosure"]["epsilon_spent"] == 0.0
    assert again["variants"] == first["variants"]  # the same noisy counts
    p2 = c.get("/v1/datasets/demo/presence", params=asked)
    assert p2.status_code == 200, p2.text
    assert p2.json()["exists"] == p1.json()["exists"]
    assert presence_answers() == before  # the stored answer, not a new draw
