"""Hostile HTTP against the served API (a ``genovault serve`` subprocess), beyond
schemathesis' defaults and beyond tests/api/test_fuzz.py (which covers the /v1 statistic
routes in-process): the Beacon v2 routes (GET parameters and POST bodies), SQL and site
filters, and Hypothesis-drawn requests over every /v1 and /beacon/v2 data route at once.

Strings carry unicode of every kind — lone surrogates (as JSON escapes in bodies, as raw
UTF-8 escapes in URLs), bidi controls, NUL — injected SQL, huge and negative positions,
oversized values and deeply nested JSON. Always: no 5xx, no stack trace, server path or
secret in any body, and the server's resident memory (read from /proc of the API process)
stays bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.served import ROOT, Served

pytestmark = pytest.mark.integration

DS = "/v1/datasets/demo"
BEACON = ("/beacon/v2/g_variants", "/beacon/v2/datasets/demo/g_variants")
TRACE = re.compile(r'Traceback|File "|line \d+, in |site-packages|/work/|/root/|/home/|/tmp/')
HOSTILE = [
    "1' OR '1'='1", "'; DROP TABLE charges; --", "1; SELECT * FROM read_csv('/etc/passwd')",
    "') UNION SELECT getenv('HOME') --", '" OR ""="', "../../etc/passwd", "$(id)",
    "${jndi:ldap://127.0.0.1/x}", "{{7*7}}", "%s%s%n", "\u202eevil\u202c", "a\u0000b",
    "\u0000", "\ufeff", "\u200b", "\uffff", "\U0001f9ec", "\ud800", "\udfff", "x\ud83dy",
    "20:1-999999999999999999999", "20:-5-10", "20:10-5", "-1", "-9223372036854775809",
    "99999999999999999999999999", "NaN", "inf", "1e309", "", " ", "x" * 5000, "\r\nX-A: 1",
    "chr20", "NC_000020.11", "refseq:NC_000020.11", "20" * 2000,
]
#: escapes no Python str of a URL can hold (lone surrogate, overlong, invalid UTF-8, NUL)
RAW = ["%ED%A0%80", "%ED%BF%BF", "%C0%AF", "%FF%FE", "%80", "%00", "%E2%80%AE"]
BEACON_PARAMS = ["referenceName", "start", "end", "referenceBases", "alternateBases",
                 "variantType", "assemblyId", "requestedGranularity", "skip", "limit",
                 "includeResultsetResponses", "filters", "datasetIds", "testMode",
                 "apiVersion"]
V1_ROUTES: dict[str, list[str]] = {
    f"{DS}/frequency": ["region", "group_by", "cursor", "limit", "format", "filter"],
    f"{DS}/genotype-counts": ["region", "group_by", "filter"],
    f"{DS}/hardy-weinberg": ["region", "group_by", "filter"],
    f"{DS}/missingness": ["region", "group_by", "filter"],
    f"{DS}/association": ["region", "phenotype", "case", "control", "filter"],
    f"{DS}/ld": ["region", "window_variants", "window_bp", "min_r2"],
    f"{DS}/sfs": ["region", "group_by", "folded", "filter"],
    f"{DS}/presence": ["chrom", "pos", "ref", "alt"],
}
RSS: dict[str, int] = {}

# every unicode category, surrogates included (they only travel as JSON escapes)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
hostile_text = st.one_of(st.sampled_from(HOSTILE), any_text)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=False), hostile_text)
json_value = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(hostile_text, kids, max_size=4)), max_leaves=20)


def to_json(value: Any) -> bytes:
    """JSON text of ``value``; lone surrogates become ``\\udXXX`` escapes (valid JSON text
    that decodes to a str no UTF-8 encoder accepts)."""
    return json.dumps(value, ensure_ascii=True).encode()


def clean(s: Served, r: httpx.Response) -> None:
    """Not a 5xx; nothing internal or secret in the body."""
    req = r.request
    assert r.status_code < 500, f"{req.method} {req.url}: {r.status_code} {r.text[:500]}"
    text = r.text
    assert not TRACE.search(text), f"internal detail in the body: {text[:500]}"
    for secret in (*s.tokens.values(), s.root_token, str(s.home), str(ROOT)):
        assert secret not in text, "a secret or a server path in the body"
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body, dict) and body, body


@pytest.fixture(scope="module")
def c(api: Served) -> Iterator[httpx.Client]:
    if api.proc is None or api.proc.poll() is not None:
        api.start_api()
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers("researcher-a")) as cl:
        yield cl


def test_hostile__rss_baseline(api: Served, c: httpx.Client) -> None:
    for _ in range(3):  # warm: kernels compiled, caches filled, before the baseline
        c.get("/beacon/v2/g_variants", params={"referenceName": "20", "start": "60",
                                                "referenceBases": "A", "alternateBases": "C"})
        c.post(f"{DS}/sql", json={"query": "SELECT count(*) FROM frequency",
                                  "region": "20:1-100000"})
    RSS["before"] = api.api_rss_kb()


@pytest.mark.parametrize("name", BEACON_PARAMS)
def test_hostile__strings_in_every_beacon_parameter(api: Served, c: httpx.Client,
                                                    name: str) -> None:
    path = BEACON[0]  # the dataset route parses the same parameters (Hypothesis covers it)
    for value in HOSTILE:
        if "\ud800" <= value[:1] <= "\udfff" or any("\ud800" <= ch <= "\udfff" for ch in value):
            continue  # not encodable in a URL from a str: RAW covers these
        clean(api, c.get(path, params={"referenceName": "20", "start": "60", name: value}))
    for raw in RAW:
        clean(api, c.get(f"{path}?referenceName=20&start=60&{name}=a{raw}b"))


@pytest.mark.parametrize("path", BEACON)
def test_hostile__beacon_bodies_explicit(api: Served, c: httpx.Client, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"query":' * 5000 + b"{}" + b"}" * 5000
    cases = [deep, deep_obj, b"{", b"null", b"[]", b'"x"', b"1e999999", b"\xff\xfe",
             b'{"meta": {}, "query": {"requestParameters": {"start": [' + b"1," * 50_000
             + b"1]}}}",
             to_json({"query": {"requestParameters": {"referenceName": "20", "start": [-5],
                                                      "end": [2**63]}}}),
             to_json({"query": {"requestParameters": {"referenceName": "\ud800",
                                                      "alternateBases": "A\u0000"}}}),
             to_json({"query": {"requestParameters": {"g_variant": {"start": "1' OR 1=1"}},
                                "pagination": {"skip": -1, "limit": 10**12},
                                "filters": [{"id": "'; DROP TABLE x"}] * 1000}}),
             to_json({"meta": {"apiVersion": "\u202e2.0"}, "query": {
                 "requestedGranularity": "\ud800", "includeResultsetResponses": "ALL",
                 "requestParameters": {"datasets": {"datasetIds": ["demo"] * 5000}}}})]
    for body in cases:
        clean(api, c.post(path, content=body, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("field", ["query", "region", "group_by", "filter"])
def test_hostile__strings_in_every_sql_field(api: Served, c: httpx.Client, field: str) -> None:
    for value in HOSTILE:
        body = {"query": "SELECT count(*) FROM frequency", "region": "20:1-50000", field: value}
        clean(api, c.post(f"{DS}/sql", content=to_json(body),
                          headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("route", sorted(V1_ROUTES))
def test_hostile__raw_escapes_in_every_v1_parameter(api: Served, c: httpx.Client,
                                                    route: str) -> None:
    base = "chrom=20&pos=61&ref=A&alt=C&" if route.endswith("presence") else \
        "region=20:1-20000&" if route.endswith("/ld") else ""
    for name in V1_ROUTES[route]:
        for raw in RAW:
            clean(api, c.get(f"{route}?{base}{name}=1{raw}"))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(V1_ROUTES) + list(BEACON)), data=st.data())
def test_hostile__hypothesis_requests_on_every_data_route(api: Served, c: httpx.Client,
                                                          route: str, data: Any) -> None:
    names = V1_ROUTES.get(route, BEACON_PARAMS)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    params = {n: data.draw(hostile_text, label=n) for n in chosen}
    # surrogates and other unencodable code points go as raw (invalid) UTF-8 escapes
    query = "&".join(f"{quote(n)}={quote(v.encode('utf-8', 'surrogatepass'))}"
                     for n, v in params.items())
    clean(api, c.get(f"{route}?{query}"))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from([*BEACON, f"{DS}/frequency", f"{DS}/sql"]), body=json_value)
def test_hostile__hypothesis_json_bodies(api: Served, c: httpx.Client, path: str,
                                         body: Any) -> None:
    clean(api, c.post(path, content=to_json(body), headers={"Content-Type": "application/json"}))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(start=st.integers(-(2**70), 2**70), end=st.integers(-(2**70), 2**70),
       ref=st.sampled_from(["A", "N", "ACGTN" * 200, "a", "<DEL>", "\ud800"]),
       granularity=st.sampled_from(["boolean", "count", "record", "\u0000", "RECORD"]))
def test_hostile__hypothesis_beacon_coordinates(api: Served, c: httpx.Client, start: int,
                                                end: int, ref: str, granularity: str) -> None:
    body = {"query": {"requestParameters": {"referenceName": "20", "start": [start],
                                            "end": [end], "referenceBases": ref},
                      "requestedGranularity": granularity}}
    for path in BEACON:
        clean(api, c.post(path, content=to_json(body),
                          headers={"Content-Type": "application/json"}))


def test_hostile__rss_bounded(api: Served, c: httpx.Client) -> None:
    assert "before" in RSS, "run with test_hostile__rss_baseline"
    grown_mib = (api.api_rss_kb() - RSS["before"]) / 1024
    assert grown_mib < 150, f"the API grew by {grown_mib:.0f} MiB under hostile input"
    assert c.get(f"{DS}/frequency", params={"region": "20:1-2000"}).status_code == 200
