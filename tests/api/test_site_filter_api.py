"""Site filters through the real HTTP API: uvicorn on loopback, an OpenBao dev server of this
module's own (so its audit chain anchor is its own), real userpass tokens.

The dataset is the demo cohort's first 3,000 records with INFO fields written into them
(VQSLOD Float, XA Number=A Integer, CSQ Number=. String) and some FILTER values changed, ingested
with ``--info``. The oracle of a filtered answer is the unfiltered answer restricted, in Python,
to the variants whose generated site values satisfy the predicate.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import DEMO, PASSWORD, serve, vauth_login
from tests.support.baodev import dev_server
from vault.api.deps import Services
from vault.api.wiring import ServiceIdentity, build_services
from vault.audit.paths import audit_log_path
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import auth as vauth
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.settings import load_settings
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

N_RECORDS = 3000
DS = "infodemo"
POLICY = """
version: 1
datasets:
  infodemo:
    consent: {permission: DUO:0000042}
    tier: controlled
roles:
  filter-researcher:
    tier: controlled
    datasets: [infodemo]
    statistics: "*"
    actions: [describe_dataset]
    use: GRU
    group_by: [population, phenotype]
    filters: [filter, qual, pos, ref, alt, VQSLOD, XA, CSQ, AC_gnomad]
    k: 11
    min_group_size: 20
    rate_limit: {requests: 100000, per_seconds: 60}
  pass-only-researcher:
    tier: controlled
    datasets: [infodemo]
    statistics: [frequency]
    use: GRU
    filters: [filter]
    k: 11
    min_group_size: 20
    rate_limit: {requests: 100000, per_seconds: 60}
principals:
  - match: {vault_policy: genovault-sf-a}
    role: filter-researcher
  - match: {vault_policy: genovault-sf-b}
    role: pass-only-researcher
"""
USERS = {"sf-a": ["genovault-sf-a"], "sf-b": ["genovault-sf-b"]}


def _site(pos: int, n_alt: int) -> dict[str, Any]:
    """The generated site values of a record (deterministic in POS)."""
    vq = None if pos % 11 == 0 else round(((pos * 2654435761) % 2000) / 100 - 10, 2)
    return {"VQSLOD": vq, "FILTER": "PASS" if pos % 5 else "LowQual",
            "CSQ": ["missense_variant", "intron_variant"] if pos % 3 == 0
            else ["synonymous_variant"],
            "XA": [(pos + 7 * j) % 13 for j in range(1, n_alt + 1)]}


def _write_vcf(src: Path, out: Path) -> dict[tuple[int, str, str], dict[str, Any]]:
    """The demo's first records with INFO and FILTER written in; the sites of every split row."""
    sites: dict[tuple[int, str, str], dict[str, Any]] = {}
    lines = []
    with gzip.open(src, "rt") as fh:
        n = 0
        for line in fh:
            if line.startswith("##"):
                lines.append(line)
                continue
            if line.startswith("#CHROM"):
                lines += ['##FILTER=<ID=LowQual,Description="generated">\n',
                          '##INFO=<ID=VQSLOD,Number=1,Type=Float,Description="generated">\n',
                          '##INFO=<ID=XA,Number=A,Type=Integer,Description="generated">\n',
                          '##INFO=<ID=CSQ,Number=.,Type=String,Description="generated">\n',
                          line]
                continue
            n += 1
            if n > N_RECORDS:
                break
            cols = line.split("\t")
            pos, alts = int(cols[1]), cols[4].split(",")
            s = _site(pos, len(alts))
            vq = "." if s["VQSLOD"] is None else repr(s["VQSLOD"])
            cols[6] = s["FILTER"]
            cols[7] = f"VQSLOD={vq};XA={','.join(map(str, s['XA']))};CSQ={','.join(s['CSQ'])}"
            lines.append("\t".join(cols))
            for j, alt in enumerate(alts):
                sites[(pos, cols[3], alt)] = {**s, "XA": s["XA"][j]}
    out.write_text("".join(lines))
    return sites


@dataclass
class FilterApi:
    url: str
    services: Services
    tokens: dict[str, str]
    sites: dict[tuple[int, str, str], dict[str, Any]]
    tmp: Path

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.tokens[user]}"})

    def audit(self, query_id: str) -> list[dict[str, Any]]:
        path = audit_log_path(self.services.settings)
        return [r for r in map(json.loads, path.read_text().splitlines())
                if r["query_id"] == query_id]


@pytest.fixture(scope="module")
def fapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilterApi]:
    tmp = tmp_path_factory.mktemp("sitefilter")
    (tmp / "bao").mkdir()
    vcf = tmp / "infodemo.vcf"
    sites = _write_vcf(DEMO / "demo_cohort.vcf.gz", vcf)
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with dev_server(tmp / "bao") as bao:
        root = bao.client()
        bootstrap(root)
        home = tmp / "home"
        ingest(vcf, DS, client=bao.client(mint_role_token(root, "ingest", ttl="15m")),
               store=Store(home / "store"), sample_sheet=DEMO / "demo_cohort_samples.tsv",
               options=IngestOptions(progress=False, info=("VQSLOD", "XA", "CSQ")))
        for user, policies in USERS.items():
            vauth.create_user(root, user, PASSWORD, policies)
        role_id, secret_id = vauth.approle_credentials(root, "service")
        settings = load_settings(home_dir=home, store_dir=home / "store", vault_addr=bao.addr,
                                 vault_token=bao.root_token, service_role_id=role_id,
                                 service_secret_id=secret_id)
        identity = ServiceIdentity(bao.addr,
                                   lambda: vauth.approle_login(bao.addr, role_id, secret_id))
        services = build_services(settings, policy_dir=policy, identity=identity)
        with serve(services) as url:
            tokens = {u: vauth_login(bao.addr, u) for u in USERS}
            yield FilterApi(url, services, tokens, sites, tmp)


@pytest.fixture
def sf_a(fapi: FilterApi) -> Iterator[httpx.Client]:
    with fapi.client("sf-a") as c:
        yield c


def _get(c: httpx.Client, route: str, **params: Any) -> dict[str, Any]:
    r = c.get(f"/v1/datasets/{DS}/{route}", params={"limit": 5000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _key(v: dict[str, Any]) -> tuple[int, str, str]:
    return (v["pos"], v["ref"], v["alt"])


def _vq_pass(s: dict[str, Any]) -> bool:
    return s["FILTER"] == "PASS" and s["VQSLOD"] is not None and s["VQSLOD"] > 0


PREDICATES: list[Any] = [
    pytest.param("FILTER = 'PASS' AND VQSLOD > 0", _vq_pass, id="pass_and_vqslod"),
    pytest.param("XA >= 7 OR VQSLOD IS NULL",
                 lambda s: s["XA"] >= 7 or s["VQSLOD"] is None, id="per_allele_or_null"),
    pytest.param("list_contains(CSQ, 'missense_variant') AND filter <> 'PASS'",
                 lambda s: "missense_variant" in s["CSQ"] and s["FILTER"] != "PASS",
                 id="list_and_filter"),
    pytest.param("VQSLOD BETWEEN -2.5 AND 2.5 AND pos % 2 = 0",
                 lambda s: s["VQSLOD"] is not None and -2.5 <= s["VQSLOD"] <= 2.5
                 and s["pos"] % 2 == 0, id="between_arith"),
]


@pytest.mark.parametrize(("expr", "pred"), PREDICATES)
def test_site_filter_api__frequency_is_the_unfiltered_answer_restricted(
        fapi: FilterApi, sf_a: httpx.Client, expr: str, pred: Callable[..., bool]) -> None:
    full = _get(sf_a, "frequency", group_by="population")
    got = _get(sf_a, "frequency", group_by="population", filter=expr)
    assert not full["truncated"] and not got["truncated"]

    def ok(key: tuple[int, str, str]) -> bool:
        return pred({**fapi.sites[key], "pos": key[0]})

    want = [v for v in full["variants"] if ok(_key(v))]
    assert 0 < len(want) < len(full["variants"])
    assert got["variants"] == want  # the same cells, only the variants the filter keeps
    sf = got["disclosure"]["site_filter"]
    assert sf["fields"] and sf["expression"]
    # the filter's effect counts rare variants too: in the audit record only, never sent
    assert "variants_considered" not in sf and "variants_excluded" not in sf
    [record] = fapi.audit(got["query_id"])
    audited = record["result"]["disclosure"]["site_filter"]
    assert audited["variants_considered"] == len(fapi.sites)
    assert audited["variants_excluded"] == sum(not ok(k) for k in fapi.sites)


def test_site_filter_api__post_body_and_every_statistic_route(
        fapi: FilterApi, sf_a: httpx.Client) -> None:
    expr = "FILTER = 'PASS' AND VQSLOD > 0"
    region = "20:1-150000"
    keep = {k for k, s in fapi.sites.items() if _vq_pass(s) and k[0] <= 150000}
    for route in ("frequency", "genotype-counts", "hardy-weinberg", "missingness"):
        got = _get(sf_a, route, region=region, filter=expr)
        assert got["variants"] and {_key(v) for v in got["variants"]} <= keep, route
        assert got["disclosure"]["site_filter"]["fields"] == ["filter", "VQSLOD"]
        r = sf_a.post(f"/v1/datasets/{DS}/{route}",
                      json={"regions": [region], "filter": expr, "limit": 5000})
        assert r.status_code == 200, r.text
        assert r.json()["variants"] == got["variants"], route
    assoc = _get(sf_a, "association", region=region, filter=expr)
    full_assoc = _get(sf_a, "association", region=region)
    assert [_key(v) for v in assoc["variants"]] == \
        [_key(v) for v in full_assoc["variants"] if _key(v) in keep]
    [record] = fapi.audit(assoc["query_id"])
    assert record["result"]["disclosure"]["site_filter"]["variants_excluded"] > 0
    sfs = _get(sf_a, "sfs", region=region, filter=expr)
    full_sfs = _get(sf_a, "sfs", region=region)
    used = [sp["variants_used"] for sp in sfs["spectra"].values()]
    full_used = [sp["variants_used"] for sp in full_sfs["spectra"].values()]
    assert 0 < used[0] < full_used[0]
    assert sfs["disclosure"]["site_filter"]["fields"] == ["filter", "VQSLOD"]
    r = sf_a.post(f"/v1/datasets/{DS}/sql", json={
        "query": "SELECT count(*) AS n FROM frequency", "region": region, "filter": expr})
    assert r.status_code == 200, r.text
    n_listed = len(_get(sf_a, "frequency", region=region, filter=expr)["variants"])
    assert r.json()["rows"] == [[n_listed]]


def test_site_filter_api__filter_and_effect_are_audited(fapi: FilterApi,
                                                        sf_a: httpx.Client) -> None:
    expr = "VQSLOD > 5 AND list_contains(CSQ, 'synonymous_variant')"
    body = _get(sf_a, "frequency", filter=expr)
    records = fapi.audit(body["query_id"])
    assert records, "no audit record"
    assert records[0]["request"]["body"] == {"filter": expr}
    assert records[0]["request"]["params"]["filter"] == expr
    done = [r for r in records if r.get("result", {}).get("status") == 200]
    audited = done[0]["result"]["disclosure"]["site_filter"]
    # the record holds what the answer says and the filter's effect, which it does not send
    assert {k: v for k, v in audited.items()
            if k not in ("variants_considered", "variants_excluded")} \
        == body["disclosure"]["site_filter"]
    assert audited["variants_considered"] >= audited["variants_excluded"] > 0


INJECTIONS = [
    pytest.param("1=1; COPY (SELECT 1) TO '{tmp}/copied.csv'", "one boolean expression",
                 id="statement_after"),
    pytest.param("read_csv('/etc/passwd') IS NOT NULL", "read_csv() is not allowed",
                 id="table_function"),
    pytest.param("pos IN (SELECT pos FROM sites)", "subqueries", id="subquery"),
    pytest.param("EXISTS (SELECT * FROM read_parquet('{tmp}/x.parquet'))", "subqueries",
                 id="exists_subquery"),
    pytest.param("pos > 0 UNION SELECT * FROM read_csv('/etc/passwd')", "no UNION",
                 id="union"),
    pytest.param("pos > 0) OR (1=1", "does not parse", id="paren_breakout"),
    pytest.param("getenv('HOME') = 'x' OR pos > 0", "getenv() is not allowed", id="getenv"),
    pytest.param("pos > 0 ORDER BY 1 LIMIT 1", "no UNION", id="clauses"),
    pytest.param("list_filter(CSQ, x -> x = 'a') = []", "list_filter() is not allowed",
                 id="lambda"),
    pytest.param("CAST(pos AS BLOB) IS NULL", "CAST to blob", id="cast_blob"),
    pytest.param("1 = 1", "references no site column", id="no_column"),
    pytest.param("AC_gnomad > 0.01", "unknown column 'AC_gnomad'", id="unknown_column"),
]


@pytest.mark.parametrize(("expr", "why"), INJECTIONS)
def test_site_filter_api__injection_and_bad_filters_are_400_and_audited(
        fapi: FilterApi, sf_a: httpx.Client, expr: str, why: str) -> None:
    expr = expr.format(tmp=fapi.tmp)
    r = sf_a.get(f"/v1/datasets/{DS}/frequency", params={"filter": expr})
    assert r.status_code == 400, r.text
    assert why in r.json()["detail"], r.json()
    records = fapi.audit(r.headers["x-query-id"])
    assert records[-1]["result"]["status"] == 400
    assert records[0]["request"]["body"] == {"filter": expr}
    r = sf_a.post(f"/v1/datasets/{DS}/frequency", json={"regions": ["20"], "filter": expr})
    assert r.status_code == 400 and why in r.json()["detail"]
    assert not list(fapi.tmp.glob("copied*")), "the filter wrote a file"


@pytest.mark.parametrize(("user", "expr", "reason"), [
    pytest.param("sf-b", "FILTER = 'PASS' AND VQSLOD > 0", "filter_not_allowed:VQSLOD",
                 id="field_not_in_role"),
    pytest.param("sf-a", "vqslod > 0", "filter_not_allowed:vqslod", id="info_ids_case"),
    pytest.param("sf-a", "nosuch > 0", "filter_not_allowed:nosuch", id="unknown_and_unlisted"),
    pytest.param("sf-a", "n_haploid > 0", "filter_not_allowed:n_haploid",
                 id="genotype_derived_column"),
])
def test_site_filter_api__disallowed_fields_are_403_by_the_policy(
        fapi: FilterApi, user: str, expr: str, reason: str) -> None:
    with fapi.client(user) as c:
        r = c.get(f"/v1/datasets/{DS}/frequency", params={"filter": expr})
    assert r.status_code == 403, r.text
    assert reason in r.json()["detail"]
    records = fapi.audit(r.headers["x-query-id"])
    assert records[0]["result"]["status"] == 403
    assert reason in records[0]["result"]["reasons"]


def test_site_filter_api__allowed_role_with_pass_filter(fapi: FilterApi) -> None:
    with fapi.client("sf-b") as c:
        body = _get(c, "frequency", filter="filter = 'PASS'")
        assert all(fapi.sites[_key(v)]["FILTER"] == "PASS" for v in body["variants"])
        [record] = fapi.audit(body["query_id"])
        assert record["result"]["disclosure"]["site_filter"]["variants_excluded"] == \
            sum(s["FILTER"] != "PASS" for s in fapi.sites.values())
        no_filter = _get(c, "frequency")
        assert "site_filter" not in no_filter["disclosure"]
    from vault.client import Client

    with Client(fapi.url, fapi.tokens["sf-b"]) as client:  # the researchers' Python client
        table = client.frequency(DS, filter="filter = 'PASS'")
        assert table.num_rows == len(body["variants"])
        assert client.last["disclosure"]["site_filter"]["fields"] == ["filter"]


def _rare_snv() -> tuple[int, str, str]:
    """A biallelic SNV of the ingested records with AC 1 … 3 (rare at k = 11: never listed)."""
    n = 0
    with gzip.open(DEMO / "demo_cohort.vcf.gz", "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            n += 1
            if n > N_RECORDS:
                break
            cols = line.rstrip("\n").split("\t")
            if len(cols[3]) != 1 or len(cols[4]) != 1:
                continue
            ac = sum(g.split(":")[0].count("1") for g in cols[9:])
            if 1 <= ac <= 3:
                return int(cols[1]), cols[3], cols[4]
    raise AssertionError("no rare SNV in the records")


def test_site_filter_api__a_filter_failing_on_one_site_does_not_say_it_is_stored(
        fapi: FilterApi, sf_a: httpx.Client) -> None:
    """A filter that fails (a CAST) only on the site of one allele: the request used to be
    400 exactly when the cohort holds that allele, rare or not (the filter runs over the
    whole partition, before any listing rule), so a carrier was named by a status code. It
    must answer the same for a rare stored allele as for an allele the cohort does not
    hold."""
    pos, ref, alt = _rare_snv()
    absent = next(b for b in "ACGT" if b not in (ref, alt))
    answers = []
    for a in (alt, absent):
        expr = (f"CASE WHEN pos = {pos} AND alt = '{a}' THEN CAST(alt AS INTEGER) > 0 "
                "ELSE TRUE END")
        for region in (f"20:{pos}-{pos}", f"20:{pos + 1}-{pos + 1}"):
            r = sf_a.get(f"/v1/datasets/{DS}/frequency", params={"region": region,
                                                                  "filter": expr})
            assert r.status_code == 200, (a == alt, region, r.text)
            body = r.json()
            answers.append((region, body["variants"], body["count"], body["truncated"],
                            body["next_cursor"],
                            {k: v for k, v in body["disclosure"].items()
                             if k != "site_filter"}))
    assert answers[:2] == answers[2:]
    # a filter that fails on every site keeps none (as where it is NULL), never a 400
    body = _get(sf_a, "frequency", region="20:1-150000", filter="CAST(filter AS INTEGER) > 0")
    assert body["variants"] == [] and body["count"] == 0
