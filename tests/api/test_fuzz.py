"""Hostile input against the live API (real HTTP on loopback, researcher-a's real token).

Oversized and deeply nested input, unicode of every kind, huge and negative positions,
injection strings in every field, unknown parameters, wrong methods: always a 4xx (or a 200
where the input is in fact valid), never a 5xx, never a stack trace, a server path or a
secret in the body — and the server process (in-process here: uvicorn runs in a thread of
the test process) does not grow without bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DS = "/v1/datasets/demo"
#: every GET route with its string parameters, and a valid value for its required ones
ROUTES: dict[str, dict[str, str | None]] = {
    f"{DS}/frequency": {"region": None, "group_by": None},
    f"{DS}/genotype-counts": {"region": None, "group_by": None},
    f"{DS}/hardy-weinberg": {"region": None, "group_by": None},
    f"{DS}/missingness": {"region": None, "group_by": None},
    f"{DS}/association": {"region": None, "phenotype": None, "case": None, "control": None},
    f"{DS}/ld": {"region": "20:1-100000"},
    f"{DS}/sfs": {"region": None, "group_by": None},
    f"{DS}/presence": {"chrom": "20", "pos": "1", "ref": "A", "alt": "T"},
}
NUMERIC = {"cursor", "limit", "window_variants", "window_bp", "min_r2", "pos", "folded"}
STRING_PARAMS = sorted({(route, name) for route, params in ROUTES.items()
                        for name in params if name not in NUMERIC})
POST_ROUTES = [f"{DS}/{r}" for r in ("frequency", "genotype-counts", "hardy-weinberg",
                                      "missingness")]
ALL_PATHS = ["/healthz", "/readyz", "/metrics", "/v1/datasets", DS, *ROUTES]

HOSTILE = [
    "1' OR '1'='1", "'; DROP TABLE variants; --", '" OR ""="', "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd", "/etc/passwd", "$(id)", "`id`", "; cat /etc/passwd", "| id",
    "${jndi:ldap://127.0.0.1/x}", "{{7*7}}", "%s%s%s%n", "<script>alert(1)</script>",
    "\U0001f9ec\U0001f600", "\u202eevil\u202c", "a\u0000b", "\u0000", "\ufeff", "\u200b",
    "\uffff", "20:1-999999999999999999999", "20:999999999999999999999-", "20:-5-10", "20:-1",
    "20:1--1", "20:0-0", "20:1,000-2,000", "20:1-2:3", "*", "%", "_", "\\", "\r\nX-Injected: 1",
    " ", "", "x" * 199, "20:" + "9" * 195,
]
#: raw percent-escapes that no str can hold: a lone surrogate, overlong and invalid UTF-8
RAW_ESCAPES = ["%ED%A0%80", "%ED%BF%BF", "%C0%AF", "%FF%FE", "%80", "%00", "%E2%80%AE"]
TRACE = re.compile(r'Traceback|File "|line \d+, in |site-packages|/work/|/root/|/home/')


def clean(api: Api, r: httpx.Response) -> None:
    """Not a 5xx; a JSON Problem when an error; nothing internal or secret in the body."""
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    text = r.text
    assert not TRACE.search(text), f"internal detail in the body: {text[:500]}"
    for secret in (api.tokens["researcher-a"], api.bao.root_token, str(api.home), str(REPO)):
        assert secret not in text, "a secret or a server path in the body"
    if r.status_code >= 400 and r.request.method != "HEAD":
        body = r.json()
        assert set(body) <= {"error", "detail", "query_id"} and body["error"], body


@pytest.fixture(scope="module")
def c(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=60,
                      headers={"Authorization": f"Bearer {api.tokens['researcher-a']}"}) as cl:
        yield cl


def _params(route: str, **override: str) -> dict[str, str]:
    base = {k: v for k, v in ROUTES[route].items() if v is not None}
    return {**base, **override}


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


RSS: dict[str, int] = {}


def test_fuzz__rss_baseline(api: Api, c: httpx.Client) -> None:
    # warm up every route once (imports, numba kernels, the partition cache of demo)
    for route in ROUTES:
        clean(api, c.get(route, params=_params(route)))
    RSS["before"] = rss_kib()


# --- oversized -----------------------------------------------------------------------------


@pytest.mark.parametrize("route,name", STRING_PARAMS)
def test_fuzz__10kb_string_parameter_is_422(api: Api, c: httpx.Client, route: str,
                                            name: str) -> None:
    r = c.get(route, params=_params(route, **{name: "2" * 10_000}))
    clean(api, r)
    assert r.status_code == 422, r.text


def test_fuzz__10kb_region_on_every_route_is_422(api: Api, c: httpx.Client) -> None:
    for route in ROUTES:
        if "region" in ROUTES[route]:
            r = c.get(route, params=_params(route, region="20:" + "1" * 10_000))
            clean(api, r)
            assert r.status_code == 422, (route, r.text)


def test_fuzz__100kb_url_and_header_are_refused_cleanly(api: Api, c: httpx.Client) -> None:
    # (httpx itself refuses a query over 64 kB)
    r = c.get(f"{DS}/frequency", params={"region": "20", "junk": "a" * 60_000})
    assert r.status_code < 500 and not TRACE.search(r.text)
    r = c.get(f"{DS}/frequency", headers={"X-Junk": "b" * 100_000})
    assert r.status_code < 500 and not TRACE.search(r.text)


def test_fuzz__10kb_token_is_401(api: Api) -> None:
    r = httpx.get(f"{api.url}/v1/datasets", headers={"Authorization": "Bearer " + "t" * 10_000},
                  timeout=60)
    clean(api, r)
    assert r.status_code == 401


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", POST_ROUTES)
def test_fuzz__deeply_nested_json_body_is_4xx(api: Api, c: httpx.Client, route: str) -> None:
    depth = 10_000
    for body in ("[" * depth + "]" * depth,
                 '{"variants": ' + "[" * depth + "]" * depth + "}",
                 '{"regions": [' + '{"a": ' * depth + "1" + "}" * depth + "]}"):
        r = c.post(route, content=body, headers={"Content-Type": "application/json"})
        clean(api, r)
        assert 400 <= r.status_code < 500, r.text


def test_fuzz__5mb_bodies_are_4xx(api: Api, c: httpx.Client) -> None:
    route = f"{DS}/frequency"
    five = 5 << 20
    variant = {"chrom": "20", "pos": 1, "ref": "A", "alt": "T"}
    one = len(json.dumps(variant)) + 2
    bodies = [
        json.dumps({"variants": [variant] * (five // one)}),  # > 10,000 variants
        json.dumps({"regions": ["20:1-2" * 10] * (five // 64)}),  # > 100 regions
        json.dumps({"variants": [{**variant, "alt": "T" * five}]}),  # one 5 MB field
        json.dumps({"group_by": "x" * five}),
        json.dumps({"junk": "y" * five}),  # an unknown field
        "{" + " " * five + "}",  # 5 MB of whitespace: valid JSON, but no selection
        "\x00" * five,
    ]
    for body in bodies:
        r = c.post(route, content=body, headers={"Content-Type": "application/json"})
        clean(api, r)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def _stream(total: int, chunk: bytes = b"[" * (1 << 16)) -> Iterator[bytes]:
    """``total`` bytes from one reused chunk: the client holds 64 kB, whatever ``total``."""
    for _ in range(total // len(chunk)):
        yield chunk


def test_fuzz__body_over_the_limit_is_413_and_never_read_whole(api: Api,
                                                               c: httpx.Client) -> None:
    """Regression: any body was read and parsed whatever its size (a 200 MB batch took the
    process past 2 GB); now over MAX_BODY_BYTES it is refused while streaming."""
    from vault.api.app import MAX_BODY_BYTES

    before = rss_kib()
    r = c.post(f"{DS}/frequency", content=_stream(256 << 20),  # chunked, no length
               headers={"Content-Type": "application/json"})
    clean(api, r)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    try:  # a declared length over the limit is refused before its first byte is read
        r = c.post(f"{DS}/frequency", content=_stream(MAX_BODY_BYTES + (1 << 16)), headers={
            "Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + (1 << 16))})
        clean(api, r)
        assert r.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError):
        pass  # the server answered and closed while the client was still sending
    grown_mib = (rss_kib() - before) / 1024
    assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB on refused bodies"
    ok = c.post(f"{DS}/frequency", json={"regions": ["20:1-100000"], "limit": 1})
    assert ok.status_code == 200, ok.text  # a normal batch still passes


@pytest.mark.parametrize("body,content_type", [
    (b"\xff\xfe\x00{", "application/json"), (b"not json", "application/json"),
    (b'{"variants": []}', "text/plain"), (b'{"variants": []}', "application/x-www-form-urlencoded"),
    (b"", "application/json"), (b"null", "application/json"), (b"[]", "application/json"),
    (b'"a string"', "application/json"), (b"1e999999", "application/json"),
    (b'{"variants": [{"chrom": "20", "pos": 1e400, "ref": "A", "alt": "T"}]}',
     "application/json"),
    (b'{"variants": [{"chrom": "20", "pos": -1, "ref": "A", "alt": "T"}]}', "application/json"),
    (b'{"regions": ["20:-5-10"]}', "application/json"),
    (b'{"variants": [], "regions": [], "cursor": 99999999999999999999999}', "application/json"),
    (b'{"variants": [], "regions": [], "limit": NaN}', "application/json"),
    (b'{"__proto__": {"x": 1}, "regions": ["20"]}', "application/json"),
])
def test_fuzz__malformed_bodies_are_4xx(api: Api, c: httpx.Client, body: bytes,
                                        content_type: str) -> None:
    r = c.post(f"{DS}/frequency", content=body, headers={"Content-Type": content_type})
    clean(api, r)
    assert 400 <= r.status_code < 500, r.text


def test_fuzz__huge_end_position_is_the_rest_of_the_chromosome(api: Api,
                                                               c: httpx.Client) -> None:
    """A valid region in fact (CHROM:START-END, END past the chromosome): 200 or a 4xx."""
    for end in ("999999999999999999999", "9" * 150):
        r = c.post(f"{DS}/frequency", json={"regions": [f"20:1-{end}"], "limit": 1})
        clean(api, r)
        r2 = c.get(f"{DS}/frequency", params={"region": f"20:1-{end}", "limit": 1})
        clean(api, r2)
        assert r.status_code == r2.status_code and r.status_code in (200, 400, 422)


def test_fuzz__unparsable_body_answers_the_problem_body(api: Api, c: httpx.Client) -> None:
    """Regression: Starlette's own 400 used to bypass the app's error handler."""
    r = c.post(f"{DS}/frequency", content=b"\xff\x1c\xfe", headers={
        "Content-Type": "application/json"})
    assert r.status_code in (400, 422)
    assert r.json()["error"] in ("bad_request", "invalid_request")


@pytest.mark.parametrize("value", HOSTILE)
def test_fuzz__hostile_strings_in_body_fields(api: Api, c: httpx.Client, value: str) -> None:
    for body in ({"regions": [value]}, {"regions": ["20"], "group_by": value},
                 {"variants": [{"chrom": value, "pos": 1, "ref": "A", "alt": "T"}]},
                 {"variants": [{"chrom": "20", "pos": 1, "ref": value, "alt": "T"}]},
                 {"variants": [{"chrom": "20", "pos": 1, "ref": "A", "alt": value}]}):
        r = c.post(f"{DS}/frequency", json=body)
        clean(api, r)


# --- every string parameter ------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_fuzz__hostile_strings_in_every_query_parameter(api: Api, c: httpx.Client,
                                                        value: str) -> None:
    for route, name in STRING_PARAMS:
        r = c.get(route, params=_params(route, **{name: value}))
        clean(api, r)


@pytest.mark.parametrize("value", HOSTILE)
def test_fuzz__hostile_strings_as_the_dataset_id(api: Api, c: httpx.Client, value: str) -> None:
    for tail in ("", "/frequency", "/presence", "/ld"):
        r = c.get(f"/v1/datasets/{quote(value, safe='')}{tail}")
        clean(api, r)
        if value == "" and tail == "":  # /v1/datasets/ -> redirect to /v1/datasets
            assert r.status_code == 307
            continue
        assert r.status_code in (404, 422), (value, tail, r.status_code)


@pytest.mark.parametrize("escape", RAW_ESCAPES)
def test_fuzz__raw_invalid_utf8_escapes_everywhere(api: Api, c: httpx.Client,
                                                   escape: str) -> None:
    urls = [f"/v1/datasets/{escape}", f"/v1/datasets/{escape}/frequency",
            f"/v1/datasets/demo{escape}/frequency", f"/{escape}"]
    for route, name in STRING_PARAMS:
        base = "&".join(f"{k}={quote(v)}" for k, v in _params(route).items() if k != name)
        urls.append(f"{route}?{name}=20{escape}&{base}")
        urls.append(f"{route}?{name}={escape}&{escape}={escape}&{base}")
    for url in urls:
        r = c.get(httpx.URL(url))
        clean(api, r)


@pytest.mark.parametrize("header", [
    "Bearer \u00ff\u00fe", "Bearer " + "\u00e9" * 50, "Bearer a b c", "Bearer  x",
    "bearer " + "x" * 40, "Bearer ../../sys/seal", "Bearer $(id)", "Bearer 1' OR '1'='1",
])
def test_fuzz__hostile_authorization_headers_are_401(api: Api, header: str) -> None:
    r = httpx.get(f"{api.url}{DS}/frequency", headers={"Authorization": header.encode("latin-1")},
                  timeout=30)
    clean(api, r)
    assert r.status_code == 401, r.text


# Hypothesis: arbitrary unicode (any category, surrogates excluded: no str encodes them; the
# raw escapes above cover those) in each string parameter, a bounded number of examples.
UNICODE = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(value=UNICODE, which=st.sampled_from(STRING_PARAMS))
def test_fuzz__hypothesis_unicode_in_string_parameters(api: Api, c: httpx.Client, value: str,
                                                         which: tuple[str, str]) -> None:
    route, name = which
    r = c.get(route, params=_params(route, **{name: value}))
    clean(api, r)


REGIONS = st.one_of(
    st.builds(lambda ch, a, b: f"{ch}:{a}-{b}", st.sampled_from(["20", "chr20", "1", "X", "Ω"]),
              st.integers(-(10**30), 10**30), st.integers(-(10**30), 10**30)),
    st.builds(lambda ch, a: f"{ch}:{a}-", st.sampled_from(["20", "x"]),
              st.integers(-(10**30), 10**30)),
    st.from_regex(r"\A[0-9a-zA-Z:,\-]{0,60}\Z"),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(region=REGIONS, route=st.sampled_from([r for r in ROUTES if "region" in ROUTES[r]]))
def test_fuzz__hypothesis_regions_huge_and_negative(api: Api, c: httpx.Client, region: str,
                                                    route: str) -> None:
    r = c.get(route, params=_params(route, region=region))
    clean(api, r)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["pos", "cursor", "limit", "window_variants", "window_bp",
                             "min_r2", "folded"]),
       value=st.one_of(st.integers(-(10**30), 10**30).map(str),
                       st.floats(allow_nan=True, allow_infinity=True).map(str),
                       st.sampled_from(["", "-0", "0x10", "1e400", "NaN", "inf", "true", "1_000",
                                        "١٢٣", "𝟙𝟚𝟛", " 1", "1 "])))
def test_fuzz__hypothesis_numeric_parameters(api: Api, c: httpx.Client, name: str,
                                             value: str) -> None:
    route = {"pos": f"{DS}/presence", "window_variants": f"{DS}/ld", "window_bp": f"{DS}/ld",
             "min_r2": f"{DS}/ld", "folded": f"{DS}/sfs"}.get(name, f"{DS}/frequency")
    r = c.get(route, params=_params(route, **{name: value}))
    clean(api, r)


# --- parameters, methods ---------------------------------------------------------------------


def test_fuzz__unknown_query_parameters_are_ignored_or_refused(api: Api,
                                                               c: httpx.Client) -> None:
    for path in ALL_PATHS:
        params = {**(_params(path) if path in ROUTES else {}), "nosuch": "1",
                  "x" * 300: "y" * 300, "region[]": "20", "__class__": "x", "": ""}
        r = c.get(path, params=params)
        clean(api, r)
        assert r.status_code in (200, 400, 403, 422), (path, r.status_code)


def test_fuzz__repeated_parameters(api: Api, c: httpx.Client) -> None:
    r = c.get(f"{DS}/frequency", params=[("region", "20:1-100"), ("region", "../x"),
                                         ("limit", "1"), ("limit", "-1")])
    clean(api, r)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "CONNECT"])
def test_fuzz__wrong_methods_are_405(api: Api, c: httpx.Client, method: str) -> None:
    for path in ALL_PATHS:
        r = c.request(method, path)
        clean(api, r)
        assert r.status_code == 405, (method, path, r.status_code)
        assert r.json()["error"] == "method_not_allowed"  # the app's body, not Starlette's
        assert "allow" in r.headers


def test_fuzz__unknown_method_is_refused(api: Api, c: httpx.Client) -> None:
    # Depending on its HTTP parser, uvicorn either answers a method it does not know with its
    # own plain-text 400 before the app, or passes it on, and the app answers its own 405
    for path in ALL_PATHS:
        r = c.request("FOO", path)
        assert r.status_code in (400, 405) and not TRACE.search(r.text), (path, r.text)
        if r.status_code == 405:
            clean(api, r)
            assert r.json()["error"] == "method_not_allowed", (path, r.text)


def test_fuzz__post_on_get_only_routes_is_405(api: Api, c: httpx.Client) -> None:
    for path in [p for p in ALL_PATHS if p not in POST_ROUTES]:
        r = c.post(path, json={"regions": ["20"]})
        clean(api, r)
        assert r.status_code == 405, (path, r.status_code)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_fuzz__head_and_options(api: Api, c: httpx.Client, method: str) -> None:
    for path in [*ALL_PATHS, *POST_ROUTES]:
        r = c.request(method, path, params=_params(path) if path in ROUTES else None)
        clean(api, r)
        assert r.status_code in (200, 405), (method, path, r.status_code)


def test_fuzz__unmatched_paths_are_the_apps_404(api: Api, c: httpx.Client) -> None:
    for path in ("/nosuch", "/v1", "/v1/datasets/demo/nosuch", "/v1/datasets/demo/frequency/x",
                 "/../../etc/passwd", "/v1/datasets/%2e%2e/%2e%2e/etc/passwd", "/docs/../x",
                 "//v1//datasets", "/v1/datasets/demo/%00", "/" + "a" * 5000):
        r = c.get(httpx.URL(path))
        clean(api, r)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert r.json()["error"] in ("not_found", "invalid_request")


# --- memory -----------------------------------------------------------------------------------


def test_fuzz__server_rss_stayed_bounded(api: Api, c: httpx.Client) -> None:
    """Everything above ran against the in-process server: the process has not ballooned."""
    assert "before" in RSS, "run the whole module: the baseline is its first test"
    for _ in range(3):  # and more of the biggest inputs do not add up
        test_fuzz__5mb_bodies_are_4xx(api, c)
    grown_mib = (rss_kib() - RSS["before"]) / 1024
    print(f"\nRSS grew by {grown_mib:.1f} MiB over the fuzz module")
    assert grown_mib < 300, f"RSS grew by {grown_mib:.0f} MiB"
