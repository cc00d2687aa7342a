"""The policy-enforced API through real HTTP on loopback, with real Vault tokens per role.

Negative paths first: no token, a rejected token, a revoked one, no grant, a hidden dataset,
a statistic or group-by the role may not use, tiny groups, small cells, differencing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import DEMO, Api
from vault.audit import verify
from vault.audit.paths import audit_log_path
from vault.keys.anchor import VaultKvAnchor

pytestmark = pytest.mark.integration

REGION = "20:1-200000"
Client = Callable[[str | None], httpx.Client]


def _audit_records(api: Api) -> list[dict]:
    import json

    path = audit_log_path(api.services.settings)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _record_of(api: Api, query_id: str) -> list[dict]:
    return [r for r in _audit_records(api) if r["query_id"] == query_id]


# --- authentication ------------------------------------------------------------------------


def test_api__no_token_is_401_and_audited(api: Api, as_user: Client) -> None:
    r = as_user(None).get("/v1/datasets/demo/frequency", params={"region": REGION})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["error"] == "unauthenticated" and body["query_id"]
    rec = _record_of(api, body["query_id"])
    assert rec and rec[0]["result"]["status"] == 401 and rec[0]["result"]["reasons"] == ["no_token"]


@pytest.mark.parametrize("header", ["Bearer s.not-a-real-token-value", "Basic abc", "Bearer",
                                    "s.no-scheme"])
def test_api__rejected_or_malformed_token_is_401(api: Api, header: str) -> None:
    r = httpx.get(f"{api.url}/v1/datasets", headers={"Authorization": header})
    assert r.status_code == 401
    assert "s.not-a-real-token-value" not in r.text


def test_api__revoked_token_stops_working_within_the_cache_ttl(api: Api) -> None:
    token = api.login("researcher-a")
    h = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api.url}/v1/datasets", headers=h).status_code == 200
    api.bao.client(token).auth.token.revoke_self()
    time.sleep(1.2)  # the test app caches lookups for 1 s
    assert httpx.get(f"{api.url}/v1/datasets", headers=h).status_code == 401


def test_api__expired_token_is_401(api: Api) -> None:
    token = api.bao.client().auth.token.create(policies=["genovault-researcher-a"], ttl="2s",
                                               explicit_max_ttl="2s")["auth"]["client_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api.url}/v1/datasets", headers=h).status_code == 200
    time.sleep(3.5)  # past its TTL and past the 1 s lookup cache
    assert httpx.get(f"{api.url}/v1/datasets", headers=h).status_code == 401


def test_api__valid_token_without_a_grant_is_403(as_user: Client) -> None:
    for path in ("/v1/datasets", "/v1/datasets/demo", "/v1/datasets/demo/frequency"):
        r = as_user("nobody").get(path)
        assert r.status_code == 403, path
        assert "no_role" in r.json()["detail"]


def test_api__caller_token_has_no_transit_rights(api: Api) -> None:
    import hvac

    c = api.bao.client(api.tokens["researcher-a"])
    with pytest.raises(hvac.exceptions.Forbidden):
        c.secrets.transit.decrypt_data("genovault.demo.genotypes", ciphertext="vault:v1:AAAA")


# --- datasets ------------------------------------------------------------------------------


def test_api__dataset_list_shows_only_visible_datasets(as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets")
    assert r.status_code == 200
    ids = [d["id"] for d in r.json()["datasets"]]
    assert ids == ["demo", "ceu"]  # "hidden" is in the store but no policy names it
    assert as_user("researcher-b").get("/v1/datasets").json()["datasets"][0]["id"] == "demo"


def test_api__hidden_and_absent_datasets_get_the_same_404(as_user: Client) -> None:
    a = as_user("researcher-a").get("/v1/datasets/hidden/frequency", params={"region": "1"})
    b = as_user("researcher-a").get("/v1/datasets/nosuch/frequency", params={"region": "1"})
    assert a.status_code == b.status_code == 404
    strip = lambda body: {k: v for k, v in body.items() if k != "query_id"}  # noqa: E731
    assert strip(a.json()) == {**strip(b.json()), "detail": strip(b.json())["detail"].replace(
        "nosuch", "hidden")}


def test_api__describe_dataset_rounds_sizes(as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sample_count"] == 300 and body["query_id"]
    pops = {g["name"]: g["size"] for g in body["group_columns"]["population"]}
    assert pops == {"pop1": 100, "pop2": 100, "pop3": 100}


# --- statistics and the policy -------------------------------------------------------------


def test_api__grouped_frequency_for_researcher_a(api: Api, as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency",
                                    params={"region": REGION, "group_by": "population",
                                            "limit": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["variants"]) > 0
    assert body["policy"]["role"] == "grouped-researcher"
    assert body["disclosure"]["k"] == 11 and body["disclosure"]["tier"] == "controlled"
    v = body["variants"][0]
    assert set(v) >= {"chrom", "pos", "ref", "alt", "overall", "groups", "suppressed"}
    assert set(v["groups"]) == {"pop1", "pop2", "pop3"}
    recs = _record_of(api, body["query_id"])
    # one request, one record: principal, request, decision and outcome together
    assert [x["type"] for x in recs] == ["complete"]
    assert recs[0]["result"]["rows"] == body["count"]
    assert recs[0]["result"]["status"] == 200
    assert recs[0]["decision"]["allowed"] is True
    assert recs[0]["principal"]["role"] == "grouped-researcher"


def test_api__overall_researcher_may_not_group(as_user: Client) -> None:
    r = as_user("researcher-b").get("/v1/datasets/demo/frequency",
                                    params={"region": REGION, "group_by": "population"})
    assert r.status_code == 403
    assert "group_by_not_allowed" in r.json()["detail"]
    ok = as_user("researcher-b").get("/v1/datasets/demo/frequency", params={"region": REGION})
    assert ok.status_code == 200


def test_api__auditor_queries_nothing(as_user: Client) -> None:
    r = as_user("auditor").get("/v1/datasets/demo/frequency", params={"region": REGION})
    assert r.status_code in (403, 404)


def test_api__unknown_group_column_is_400(as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency",
                                    params={"region": REGION, "group_by": "nosuchcolumn"})
    assert r.status_code in (400, 403)


@pytest.mark.parametrize("params", [
    {"region": "20:--5"}, {"region": "20:0-10"}, {"region": "20:10-5"}, {"limit": "0"},
    {"limit": "999999"}, {"cursor": "-1"}, {"region": "x" * 500},
])
def test_api__bad_parameters_are_4xx_never_5xx(as_user: Client, params: dict) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency", params=params)
    assert 400 <= r.status_code < 500, r.text
    assert "Traceback" not in r.text


# --- disclosure control -------------------------------------------------------------------


def _all_pages(c: httpx.Client, path: str, key: str = "variants",
               **params: object) -> list[dict]:
    """Every ``key`` row of a paged GET answer."""
    rows, cursor = [], 0
    while True:
        r = c.get(path, params={**params, "cursor": cursor, "limit": 5000})
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body[key]
        if not body["truncated"]:
            return rows
        cursor = body["next_cursor"]


def test_api__no_released_cell_has_a_small_count(as_user: Client) -> None:
    rows = _all_pages(as_user("researcher-a"), "/v1/datasets/demo/genotype-counts",
                      group_by="population")
    assert rows
    n_null = 0
    for v in rows:
        for name, c in [("overall", v["overall"]), *v["groups"].items()]:
            if c["het"] is None:
                n_null += 1
                assert any(s["cell"] in (name, f"groups.{name}") for s in v["suppressed"])
                continue
            for f in ("hom_ref", "het", "hom_alt"):
                assert c[f] == 0 or c[f] >= 11, (v["pos"], name, f, c)
            ac, ref = c["het"] + 2 * c["hom_alt"], c["het"] + 2 * c["hom_ref"]
            assert ac == 0 or ac >= 11
            assert ref == 0 or ref >= 11
    assert n_null > 0, "the demo cohort has small cells: some must be suppressed"


def test_api__suppressed_cell_cannot_be_recovered_by_subtraction(as_user: Client) -> None:
    rows = _all_pages(as_user("researcher-a"), "/v1/datasets/demo/frequency",
                      group_by="population")
    for v in rows:
        if v["overall"]["ac"] is None:
            continue
        hidden = [g for g, c in v["groups"].items() if c["ac"] is None]
        assert len(hidden) != 1, f"{v['pos']}: one suppressed group = overall - others"


def test_api__suppressed_ac_cannot_be_recovered_from_frequency_and_genotype_counts(
        as_user: Client) -> None:
    """The attack a review ran as one SQL join (the same works with two requests): a
    group's AC is known where either answer releases it (frequency's AC, or het + 2 hom-alt
    from genotype-counts), so a group hidden by frequency must stay hidden in
    genotype-counts whenever it is the only unknown left. Before each answer chose its
    complementary cells alone, and 403 suppressed cells of this cohort (316 with AC 1..10)
    came back exactly as overall - the others."""
    c = as_user("researcher-a")
    freq = {(v["pos"], v["ref"], v["alt"]): v for v in
            _all_pages(c, "/v1/datasets/demo/frequency", group_by="population")}
    geno = {(v["pos"], v["ref"], v["alt"]): v for v in
            _all_pages(c, "/v1/datasets/demo/genotype-counts", group_by="population")}
    assert freq and set(freq) <= set(geno) | set(freq)
    checked = 0
    for key, f in freq.items():
        if f["overall"]["ac"] is None:
            continue
        g = geno.get(key)
        unknown = []
        for name, cell in f["groups"].items():
            gc = g["groups"][name] if g is not None else None
            if cell["ac"] is None and (gc is None or gc["het"] is None):
                unknown.append(name)
        if any(cell["ac"] is None for cell in f["groups"].values()):
            checked += 1
            assert len(unknown) != 1, f"{key}: {unknown[0]}'s AC = overall - the others"
    assert checked > 100, "the demo cohort has many variants with a suppressed group"


def test_api__suppressed_ac_cannot_be_recovered_from_frequency_and_association(
        as_user: Client) -> None:
    """Association takes any column and any two of its groups as case and control. Its
    suppression was decided over those two groups alone, the column's other groups being
    one hidden part that shields, so it released a group that the grouped answers hide as
    complementary: frequency by population (overall, pop3) with association pop1 vs pop2
    (pop2's genotype counts) gave pop1's AC as overall − pop2 − pop3, for 1,767 suppressed
    cells of the demo cohort (1,371 with AC 1..10)."""
    c = as_user("researcher-a")
    freq = {(v["pos"], v["ref"], v["alt"]): v for v in
            _all_pages(c, "/v1/datasets/demo/frequency", group_by="population")}
    known: dict[tuple, set[str]] = {}
    for case, control in (("pop1", "pop2"), ("pop1", "pop3"), ("pop2", "pop3")):
        for v in _all_pages(c, "/v1/datasets/demo/association", phenotype="population",
                            case=case, control=control):
            for name, cell in v["groups"].items():
                if cell["het"] is not None:
                    known.setdefault((v["pos"], v["ref"], v["alt"]), set()).add(name)
    checked = 0
    for key, f in freq.items():
        if f["overall"]["ac"] is None:
            continue
        unknown = [g for g, cell in f["groups"].items()
                   if cell["ac"] is None and g not in known.get(key, set())]
        if any(cell["ac"] is None for cell in f["groups"].values()):
            checked += 1
            assert len(unknown) != 1, f"{key}: {unknown[0]}'s AC = overall - the others"
    assert checked > 100, "the demo cohort has many variants with a suppressed group"


def _rare_and_absent(limit_ac: int = 10) -> tuple[tuple[str, int, str, str], tuple[str, int,
                                                                               str, str], int]:
    """From the demo VCF: a stored biallelic SNV with overall AC 1..``limit_ac``, an allele
    the cohort does not hold at the same position, and a position with no record at all."""
    import pysam

    from tests.api.conftest import DEMO

    positions: set[int] = set()
    rare = None
    with pysam.VariantFile(str(DEMO / "demo_cohort.vcf.gz")) as vf:
        for rec in vf:
            positions.add(rec.pos)
            if rare is None and len(rec.alts or ()) == 1 and len(rec.ref) == 1 \
                    and len(rec.alts[0]) == 1:
                ac = sum(a == 1 for s in rec.samples.values() for a in (s["GT"] or ())
                         if a is not None)
                if 1 <= ac <= limit_ac:
                    rare = (rec.chrom, rec.pos, rec.ref, rec.alts[0])
    assert rare is not None
    other = next(b for b in "ACGT" if b not in (rare[2], rare[3]))
    empty = next(p for p in range(rare[1] + 1, rare[1] + 10_000) if p not in positions)
    return rare, (rare[0], rare[1], rare[2], other), empty


def test_api__a_rare_stored_variant_answers_like_an_absent_one(api: Api,
                                                                as_user: Client) -> None:
    """Membership oracle: ``disclosure.omitted_variants`` used to be 1 for a rare stored
    allele and 0 for an allele the cohort does not hold (and a site filter's tallies counted
    rare variants the same way). The counts stay in the audit record; the answers are the
    same, for a variant list and for a region of one position."""
    (chrom, pos, ref, alt), absent, empty = _rare_and_absent()
    c = as_user("researcher-a")

    def ask(**kw: object) -> dict:
        if "variant" in kw:
            v = kw["variant"]
            r = c.post("/v1/datasets/demo/frequency", json={"variants": [
                {"chrom": v[0], "pos": v[1], "ref": v[2], "alt": v[3]}]})
        else:
            r = c.get("/v1/datasets/demo/frequency", params={"region": kw["region"]})
        assert r.status_code == 200, r.text
        return r.json()

    def same(a: dict, b: dict) -> None:
        strip = lambda x: {k: v for k, v in x.items() if k != "query_id"}  # noqa: E731
        assert strip(a) == strip(b)
        assert "omitted_variants" not in a["disclosure"]

    stored = ask(variant=(chrom, pos, ref, alt))
    same(stored, ask(variant=absent))
    assert stored["variants"] == []
    assert _record_of(api, stored["query_id"])[0]["result"]["disclosure"][
        "omitted_variants"] == 1  # still accountable: the audit record says it
    here = ask(region=f"{chrom}:{pos}-{pos}")
    same(here, ask(region=f"{chrom}:{empty}-{empty}"))
    assert _record_of(api, here["query_id"])[0]["result"]["disclosure"][
        "omitted_variants"] >= 1
    # the same through LD and the Arrow envelope
    ld = c.get("/v1/datasets/demo/ld", params={"region": f"{chrom}:{pos}-{pos + 1}"})
    assert ld.status_code == 200 and "omitted_variants" not in ld.json()["disclosure"]
    arrow = c.get("/v1/datasets/demo/frequency", params={"region": f"{chrom}:{pos}-{pos}",
                                                         "format": "arrow"})
    assert arrow.status_code == 200 and b"omitted_variants" not in arrow.content


def test_api__ld_hides_pairs_whose_joint_allele_counts_are_small(as_user: Client) -> None:
    """With r exact and each variant's genotype counts released, Σxy of the ALT dosages is
    determined (an integer): a review read "exactly one person carries both" off pairs of
    18 and 15 carriers. A released pair now has every joint allele sum (ALT·ALT, ALT·REF,
    REF·ALT, REF·REF) 0 or at least k; min_r2 never lists a withheld pair."""
    import pysam

    from tests.api.conftest import DEMO

    k = 11
    c = as_user("researcher-a")
    params = {"region": "20:1-150000", "window_variants": 60, "limit": 5000}

    def all_pairs(**extra: object) -> list[dict]:
        return _all_pages(c, "/v1/datasets/demo/ld", "pairs", **params, **extra)

    body = {"pairs": all_pairs()}
    assert body["pairs"]
    dosage: dict[tuple[int, str, str], np.ndarray] = {}
    with pysam.VariantFile(str(DEMO / "demo_cohort.vcf.gz")) as vf:
        for rec in vf:
            if rec.pos > 150000:
                break
            if len(rec.alts or ()) != 1:
                continue
            gts = [s["GT"] for s in rec.samples.values()]
            dosage[(rec.pos, rec.ref, rec.alts[0])] = np.array(
                [-1 if g is None or None in g else sum(a == 1 for a in g) for g in gts])
    released = withheld = 0
    for pair in body["pairs"]:
        x = dosage.get((pair["a"]["pos"], pair["a"]["ref"], pair["a"]["alt"]))
        y = dosage.get((pair["b"]["pos"], pair["b"]["ref"], pair["b"]["alt"]))
        if x is None or y is None:
            continue
        both = (x >= 0) & (y >= 0)
        xv, yv, n = x[both], y[both], int(both.sum())
        sxy = int((xv * yv).sum())
        joint = [sxy, 2 * int(xv.sum()) - sxy, 2 * int(yv.sum()) - sxy,
                 4 * n - 2 * int(xv.sum()) - 2 * int(yv.sum()) + sxy]
        small = any(1 <= j < k for j in joint)
        if pair["status"] == "suppressed":
            withheld += n >= k and small  # withheld for its joint counts, not its n
        else:
            released += 1
            assert not small, (pair, joint)
    assert released > 100 and withheld > 100, (released, withheld)
    strict = {"pairs": all_pairs(min_r2=0.5)}
    assert strict["pairs"] and all(p["status"] == "ok" and p["r2"] >= 0.5
                                   for p in strict["pairs"])
    key = lambda p: (p["a"]["pos"], p["b"]["pos"], p["a"]["alt"], p["b"]["alt"])  # noqa: E731
    assert [key(p) for p in strict["pairs"]] == [
        key(p) for p in body["pairs"] if p["status"] == "ok" and p["r2"] >= 0.5]


def test_api__sfs_counts_only_cells_a_frequency_answer_releases(as_user: Client) -> None:
    """A spectrum over a region of one position is the AC of its variant(s) per group. It
    used to count every variant and cell, so `sfs?region=20:P-P&group_by=population` gave
    the exact AC of a suppressed group (and of unlisted rare variants: singletons)."""
    c = as_user("researcher-a")
    whole = c.get("/v1/datasets/demo/sfs", params={"region": REGION}).json()
    assert whole["spectra"]["overall"]["counts"][1:11] == [0] * 10, "rare variants counted"
    assert whole["disclosure"].get("omitted_variants") is None  # it would say one exists
    rows = _all_pages(c, "/v1/datasets/demo/frequency", region=REGION, group_by="population")
    by_pos: dict[int, list[dict]] = {}
    for v in rows:
        by_pos.setdefault(v["pos"], []).append(v)
    hidden = [p for p, vs in by_pos.items()
              if any(cell["ac"] is None for v in vs for cell in v["groups"].values())]
    assert len(hidden) >= 5
    for pos in hidden[:20]:
        body = c.get("/v1/datasets/demo/sfs", params={"region": f"20:{pos}-{pos}",
                                                      "group_by": "population"}).json()
        for name, spectrum in body["spectra"].items():
            cells = [v["overall"] if name == "overall" else v["groups"][name]
                     for v in by_pos[pos]]
            want = sorted(cell["ac"] for cell in cells
                          if cell["ac"] is not None and cell["n_called"] == cell["n"])
            got = sorted(i for i, n in enumerate(spectrum["counts"]) for _ in range(n))
            assert got == want, (pos, name, got, want)


def test_api__rare_variants_are_not_listed(as_user: Client) -> None:
    rows = _all_pages(as_user("researcher-a"), "/v1/datasets/demo/frequency")
    for v in rows:
        ac, an = v["overall"]["ac"], v["overall"]["an"]
        assert ac is None or ac == 0 or ac >= 11
        assert ac is None or an - ac == 0 or an - ac >= 11


@pytest.mark.parametrize(("dataset", "vcf", "at_least"), [
    pytest.param("demo", DEMO / "demo_cohort.vcf.gz", 1000, id="msprime-demo"),
    pytest.param("ceu", DEMO.parents[1] / "tests" / "data" / "vcf" / "SeqArray__CEU_Exon.vcf.gz",
                 100, id="1000genomes-ceu-exome"),
])
def test_api__af_equals_bcftools_where_released(as_user: Client, dataset: str, vcf: Path,
                                                at_least: int) -> None:
    out = subprocess.run(
        ["bcftools", "+fill-tags", str(vcf), "-Ou", "--", "-t", "AC,AN"], check=True,
        capture_output=True)
    q = subprocess.run(["bcftools", "query", "-f", "%POS\t%REF\t%ALT\t%AC\t%AN\n"],
                       input=out.stdout, check=True, capture_output=True)
    oracle = {}
    for line in q.stdout.decode().splitlines():
        pos, ref, alt, ac, an = line.split("\t")
        if "," not in alt:
            oracle[(int(pos), ref, alt)] = (int(ac), int(an))
    rows = _all_pages(as_user("researcher-a"), f"/v1/datasets/{dataset}/frequency")
    compared = 0
    for v in rows:
        key = (v["pos"], v["ref"], v["alt"])
        if key in oracle and v["overall"]["ac"] is not None:
            ac, an = oracle[key]
            assert (v["overall"]["ac"], v["overall"]["an"]) == (ac, an), key
            assert v["overall"]["af"] == pytest.approx(ac / an, rel=1e-12)
            compared += 1
    assert compared >= at_least


def test_api__differencing_overlapping_regions_and_repeats_agree(as_user: Client) -> None:
    c = as_user("researcher-a")
    whole = {(v["pos"], v["ref"], v["alt"]): v for v in _all_pages(
        c, "/v1/datasets/demo/frequency", region="20:1-400000", group_by="population")}
    left = _all_pages(c, "/v1/datasets/demo/frequency", region="20:1-250000",
                      group_by="population")
    right = _all_pages(c, "/v1/datasets/demo/frequency", region="20:150000-400000",
                       group_by="population")
    again = _all_pages(c, "/v1/datasets/demo/frequency", region="20:1-400000",
                       group_by="population")
    for v in [*left, *right, *again]:
        assert whole[(v["pos"], v["ref"], v["alt"])] == v
    assert list(whole.values()) == again


def test_api__complementary_group_query_reveals_nothing_new(as_user: Client) -> None:
    """'Everyone minus one group': overall and the other groups never isolate a cell."""
    c = as_user("researcher-a")
    by_pop = _all_pages(c, "/v1/datasets/demo/frequency", group_by="population")
    overall = {(v["pos"], v["ref"], v["alt"]): v["overall"]
               for v in _all_pages(c, "/v1/datasets/demo/frequency")}
    for v in by_pop:
        assert overall[(v["pos"], v["ref"], v["alt"])] == v["overall"]
        released = [g for g in v["groups"].values() if g["ac"] is not None]
        if v["overall"]["ac"] is not None and len(released) == len(v["groups"]) - 1:
            pytest.fail(f"{v['pos']}: overall minus two groups gives the third")


def test_api__presence_of_a_rare_allele_is_null_like_absent(as_user: Client) -> None:
    c = as_user("researcher-a")
    rows = _all_pages(c, "/v1/datasets/demo/frequency")
    common = next(v for v in rows if (v["overall"]["ac"] or 0) >= 50)
    yes = c.get("/v1/datasets/demo/presence", params={k: common[k] for k in
                                                       ("pos", "ref", "alt")} | {"chrom": "20"})
    assert yes.status_code == 200 and yes.json()["exists"] is True
    absent = c.get("/v1/datasets/demo/presence",
                   params={"chrom": "20", "pos": 1, "ref": "A", "alt": "T"})
    assert absent.json()["exists"] is None


def test_api__post_batch_of_variants_pages_with_truncated_flag(as_user: Client) -> None:
    c = as_user("researcher-a")
    rows = _all_pages(c, "/v1/datasets/demo/frequency", region=REGION)
    wanted = [{"chrom": v["chrom"], "pos": v["pos"], "ref": v["ref"], "alt": v["alt"]}
              for v in rows[:7]]
    r = c.post("/v1/datasets/demo/frequency", json={"variants": wanted, "limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 5 and body["truncated"] is True and body["next_cursor"] == 5
    r2 = c.post("/v1/datasets/demo/frequency",
                json={"variants": wanted, "limit": 5, "cursor": 5}).json()
    assert r2["truncated"] is False
    got = [(v["pos"], v["ref"], v["alt"]) for v in body["variants"] + r2["variants"]]
    assert got == [(w["pos"], w["ref"], w["alt"]) for w in wanted]


@pytest.mark.parametrize("path,params", [
    ("hardy-weinberg", {"region": REGION}),
    ("missingness", {"region": REGION, "group_by": "population"}),
    ("association", {"region": REGION}),
    ("ld", {"region": "20:1-100000"}),
    ("sfs", {"group_by": "population"}),
])
def test_api__other_statistics_answer_with_disclosure(as_user: Client, path: str,
                                                      params: dict) -> None:
    r = as_user("researcher-a").get(f"/v1/datasets/demo/{path}", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query_id"] and body["disclosure"]["k"] == 11


# --- no individual data leaves, whatever the route ------------------------------------------


def test_api__no_sample_id_or_pseudonym_in_any_answer(api: Api, as_user: Client) -> None:
    sample_ids = [line.split("\t")[0] for line in
                  (DEMO / "demo_cohort_samples.tsv").read_text().splitlines()[1:]]
    from vault.keys.kms import Keyring
    from vault.store.reader import DatasetReader

    reader = DatasetReader(api.store, "demo", Keyring(api.services.query.vault_client(),
                                                      "demo"))
    pseudonyms = reader.samples(["pseudonym"]).column("pseudonym").to_pylist()
    c = as_user("researcher-a")
    texts = [c.get(p, params=q).text for p, q in [
        ("/v1/datasets", {}), ("/v1/datasets/demo", {}),
        ("/v1/datasets/demo/frequency", {"group_by": "population", "limit": 5000}),
        ("/v1/datasets/demo/genotype-counts", {"group_by": "sex", "limit": 5000}),
        ("/v1/datasets/demo/association", {"limit": 5000}),
        ("/v1/datasets/demo/ld", {"region": "20:1-300000"}),
        ("/v1/datasets/demo/sfs", {"group_by": "population"}),
        ("/v1/datasets/demo/frequency", {"group_by": "nosuch"}),
        ("/v1/datasets/nosuch", {}), ("/openapi.json", {}), ("/metrics", {}),
        ("/readyz", {}),
    ]]
    blob = "\n".join(texts)
    assert not [s for s in sample_ids if s in blob]
    assert not [p for p in pseudonyms if p in blob]
    assert api.tokens["researcher-a"] not in blob and api.bao.root_token not in blob
    log = audit_log_path(api.services.settings).read_text()
    assert not [s for s in sample_ids if f'"{s}"' in log]
    assert api.tokens["researcher-a"] not in log and api.bao.root_token not in log


# --- operations -------------------------------------------------------------------------


def test_api__health_ready_metrics(as_user: Client) -> None:
    c = as_user(None)
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = c.get("/metrics").text
    assert "genovault_requests_total" in metrics

    def audit_metric(text: str, name: str) -> float:
        [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
        return float(line.split()[1])

    before = {n: audit_metric(metrics, n) for n in (
        "genovault_audit_appends_total", "genovault_audit_turn_hold_seconds_total",
        "genovault_audit_turn_wait_seconds_total")}
    as_user("researcher-a").get("/v1/datasets/demo/frequency", params={"region": REGION})
    c.get("/v1/datasets/demo/frequency", params={"region": REGION})  # refused: audited too
    after = c.get("/metrics").text
    assert audit_metric(after, "genovault_audit_appends_total") \
        == before["genovault_audit_appends_total"] + 2
    assert audit_metric(after, "genovault_audit_turn_hold_seconds_total") \
        > before["genovault_audit_turn_hold_seconds_total"]
    assert audit_metric(after, "genovault_audit_turn_wait_seconds_total") \
        >= before["genovault_audit_turn_wait_seconds_total"]


def test_api__audit_chain_verifies_after_the_session(api: Api, as_user: Client) -> None:
    as_user("researcher-a").get("/v1/datasets/demo/frequency", params={"region": REGION})
    report = verify(audit_log_path(api.services.settings),
                    VaultKvAnchor(api.services.query.vault_client()))
    assert report.ok, report.problems
    assert report.records >= 10


def test_api__max_region_bp_is_enforced_on_every_route(api: Api, as_user: Client) -> None:
    """The policy's max_region_bp compiled to a rule on context.region_bp, which no route
    set: the limit did nothing. Every route now states the bases its regions cover (the
    whole dataset without a region, the rest of the contig for an open end)."""
    c = as_user("capped")  # max_region_bp: 100000
    small, big = "20:1-100000", "20:1-100001"
    ds = "/v1/datasets/demo"
    gets = [("frequency", {}), ("ld", {}), ("sfs", {}), ("association", {})]
    for route, extra in gets:
        ok = c.get(f"{ds}/{route}", params={"region": small, **extra})
        assert ok.status_code == 200, (route, ok.text)
        for region in (big, "20:1-", *([None] if route != "ld" else [])):
            r = c.get(f"{ds}/{route}", params={**extra, **({"region": region} if region
                                                           else {})})
            assert r.status_code == 403, (route, region, r.text)
            assert "region_too_large" in r.json()["detail"]
            [rec] = _record_of(api, r.headers["x-query-id"])
            assert rec["result"]["status"] == 403
    post = c.post(f"{ds}/frequency", json={"regions": ["20:1-60000", "20:70000-120000"]})
    assert post.status_code == 403  # 110,001 bases in all
    assert c.post(f"{ds}/frequency", json={"regions": ["20:1-60000"]}).status_code == 200
    # a list of variants states no region (max_variants bounds it)
    assert c.post(f"{ds}/frequency", json={"variants": [
        {"chrom": "20", "pos": 61, "ref": "A", "alt": "C"}]}).status_code == 200
    sql = {"query": "SELECT count(*) AS n FROM frequency"}
    assert c.post(f"{ds}/sql", json={**sql, "region": small}).status_code == 200
    assert c.post(f"{ds}/sql", json=sql).status_code == 403
    def beacon(end: int) -> httpx.Response:
        return c.get("/beacon/v2/g_variants", params={
            "referenceName": "20", "start": 0, "end": end, "requestedGranularity": "boolean"})

    assert beacon(100000).status_code == 200
    refused = beacon(200000)  # the one dataset visible to the role refuses: a Beacon error
    assert refused.status_code == 403
    assert "region_too_large" in refused.json()["error"]["errorMessage"]


def test_api__rate_limit_is_enforced_and_audited(api: Api, as_user: Client) -> None:
    c = as_user("limited")
    codes = [c.get("/v1/datasets/demo/frequency", params={"region": REGION, "limit": 1})
             .status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.get("/v1/datasets/demo/frequency", params={"region": REGION, "limit": 1})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _record_of(api, r.json()["query_id"])[0]["result"]["reasons"] == ["rate_limited"]


def test_api__researcher_b_is_registered_tier_with_noise(as_user: Client) -> None:
    r = as_user("researcher-b").get("/v1/datasets/demo/frequency",
                                    params={"region": REGION, "limit": 5})
    assert r.status_code == 200
    d = r.json()["disclosure"]
    assert d["tier"] == "registered" and d["noise"] == "discrete_laplace"
    assert d["epsilon_remaining"] is not None


def test_api__sfs_of_a_rare_variant_looks_like_an_empty_region(as_user: Client) -> None:
    """Site oracle on the controlled tier: a spectrum was built from the partitions a region
    reached, so over one position holding only a rare variant (never counted) it was a list
    of 2N+1 zeros, and over an empty position ``[]`` — it said whether a variant is stored
    there. Every spectrum now has its full length whatever is stored."""
    from tests.support.demo import rare_snvs, unstored_positions

    c = as_user("researcher-a")
    rare = [r for r in rare_snvs(530_000, 10)
            if not c.get("/v1/datasets/demo/frequency",
                         params={"region": f"20:{r[1]}-{r[1]}"}).json()["variants"]][:3]
    empty = unstored_positions("20", 530_001, 3)
    assert len(rare) == 3
    for params in ({}, {"group_by": "population"}, {"folded": "true"}):
        answers = []
        for pos in [r[1] for r in rare] + empty:
            r = c.get("/v1/datasets/demo/sfs", params={"region": f"20:{pos}-{pos}", **params})
            assert r.status_code == 200, r.text
            body = r.json()
            answers.append((body["spectra"], body["disclosure"]["suppressed_cells"]))
        assert all(a == answers[0] for a in answers), (params, answers)
        assert answers[0][0]["overall"]["counts"] and not any(answers[0][0]["overall"]["counts"])
