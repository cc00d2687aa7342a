"""Site filter expressions (vault.query.sitefilter) without a server: what parses, what is
refused and why, which fields reach the policy, and what a filter selects from a site table.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from vault.policy import decide
from vault.policy.loader import load_policy
from vault.policy.model import Principal, QueryRequest
from vault.query.sitefilter import SiteFilterError, parse, sites_view

SITES = pa.table({
    "chrom": ["1"] * 6, "pos": [10, 20, 30, 40, 50, 60],
    "id": [".", "rs1", ".", ".", "rs2", "."], "ref": ["A", "C", "G", "T", "A", "C"],
    "alt": ["C", "T", "A", "G", "<DEL>", "T"],
    "qual": pa.array([50.0, None, 10.0, 99.5, 30.0, 5.0], pa.float32()),
    "filter": ["PASS", "PASS", "LowQual", "PASS", "PASS", "q10;LowQual"],
    "VQSLOD": pa.array([1.5, -2.0, None, 7.25, 0.0, 3.0]),
    "AC": pa.array([3, 1, None, 12, 0, 5], pa.int64()),
    "CSQ": pa.array([["missense"], ["synonymous", "intron"], None, ["missense", "utr"], [],
                     ["stop_gained"]], pa.list_(pa.string())),
    "XR": pa.array([[1.0, 2.0], None, [None, 3.0], [0.5, 0.5], [1.0, 1.0], [2.0, 0.0]],
                   pa.list_(pa.float64())),
    "DB": [True, False, False, True, False, False],
})

SELECTS = [
    pytest.param("FILTER = 'PASS' AND VQSLOD > 0", [10, 40], id="pass_and_score"),
    pytest.param("VQSLOD IS NULL OR qual < 10", [30, 60], id="null_or"),
    pytest.param("list_contains(CSQ, 'missense')", [10, 40], id="list_contains"),
    pytest.param("CSQ[1] = 'synonymous'", [20], id="list_index"),
    pytest.param("XR[2] > XR[1]", [10], id="R_field_elements"),  # NULL element: not kept
    pytest.param("filter LIKE '%LowQual'", [30, 60], id="like"),
    pytest.param("id <> '.' AND NOT DB", [20, 50], id="not_flag"),
    pytest.param("pos BETWEEN 20 AND 50 AND AC IN (1, 12)", [20, 40], id="between_in"),
    pytest.param("alt LIKE '<%>' OR ref = 'G'", [30, 50], id="symbolic"),
    pytest.param("coalesce(VQSLOD, -99) < -1", [20, 30], id="coalesce"),
    pytest.param("abs(VQSLOD) * 2 >= 6 AND len(CSQ) >= 1", [40, 60], id="arith_len"),
    pytest.param("CASE WHEN AC > 4 THEN TRUE ELSE FALSE END", [40, 60], id="case"),
    pytest.param("TRY_CAST(filter AS INTEGER) IS NULL AND pos < 20", [10], id="try_cast"),
    pytest.param("vqslod_missing_is_not_a_column > 0 OR pos = 10", None, id="unknown_col"),
]


@pytest.mark.parametrize(("expr", "want"), SELECTS)
def test_site_filter__selects_the_rows_where_it_holds(expr: str, want: list[int] | None) -> None:
    sf = parse(expr)
    if want is None:
        with pytest.raises(SiteFilterError, match="unknown column"):
            sf.check_columns(["VQSLOD", "AC", "CSQ", "XR", "DB"])
        return
    sf.check_columns(["VQSLOD", "AC", "CSQ", "XR", "DB"])
    mask = sf.select(SITES)
    assert SITES.column("pos").filter(pa.array(mask)).to_pylist() == want


def test_site_filter__fields_are_canonical_for_the_policy() -> None:
    sf = parse("FILTER = 'PASS' AND Qual > 3 AND VQSLOD > 0 AND \"END\" > 5 AND VQSLOD < 9")
    assert sf.fields == ("filter", "qual", "VQSLOD", "END")
    assert "VQSLOD" in sf.canonical and sf.describe(10, 4) == {
        "expression": sf.canonical, "fields": list(sf.fields), "variants_considered": 10,
        "variants_excluded": 6}


def test_site_filter__info_ids_are_case_sensitive() -> None:
    with pytest.raises(SiteFilterError, match=r"case-sensitive.*'VQSLOD'"):
        parse("vqslod > 0").check_columns(["VQSLOD"])
    parse("VQSLOD > 0").check_columns(["VQSLOD"])
    parse("FiLtEr = 'PASS'").check_columns([])  # fixed columns: any case


REFUSED = [
    pytest.param("", "empty", id="empty"),
    pytest.param("x" * 2001, "longer than", id="too_long"),
    pytest.param("pos > 1\x00", "NUL", id="nul"),
    pytest.param("pos > 1; DROP TABLE sites", "one boolean expression", id="second_statement"),
    pytest.param("1=1; COPY sites TO '/tmp/gv.csv'", "one boolean expression", id="copy"),
    pytest.param("pos > 0; ATTACH '/tmp/x.db'", "one boolean expression", id="attach"),
    pytest.param("pos > 0; INSTALL httpfs", "one boolean expression", id="install"),
    pytest.param("pos > 0; SET enable_external_access = true", "one boolean expression",
                 id="set"),
    pytest.param("read_csv('/etc/passwd') IS NOT NULL", "read_csv() is not allowed",
                 id="read_csv"),
    pytest.param("read_text('/etc/passwd') <> ''", "read_text() is not allowed",
                 id="read_text"),
    pytest.param("pos IN (SELECT 1)", "subqueries", id="in_subquery"),
    pytest.param("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", "subqueries", id="exists"),
    pytest.param("pos > (SELECT max(pos) FROM sites)", "subqueries", id="scalar_subquery"),
    pytest.param("'x' = ANY(SELECT 1)", "subqueries", id="any_subquery"),
    pytest.param("pos > 0 UNION SELECT * FROM read_csv('/etc/passwd')", "no UNION",
                 id="union"),
    pytest.param("pos > 0 ORDER BY pos", "no UNION", id="order_by"),
    pytest.param("pos > 0 LIMIT 1", "no UNION", id="limit"),
    pytest.param("pos > 0 GROUP BY pos HAVING count(*) > 1", "no UNION", id="group_by"),
    pytest.param("pos > 0 QUALIFY 1", "no UNION", id="qualify"),
    pytest.param("pos > 0) OR (1=1", "does not parse", id="paren_breakout"),
    pytest.param("sites.pos > 1", "without a table or schema prefix", id="qualified"),
    pytest.param("main.sites.pos > 1", "without a table or schema prefix", id="schema"),
    pytest.param("getenv('HOME') = '/root'", "getenv() is not allowed", id="getenv"),
    pytest.param("current_setting('threads') = 1", "current_setting() is not allowed",
                 id="current_setting"),
    pytest.param("sum(pos) > 1", "sum() is not allowed", id="aggregate"),
    pytest.param("row_number() OVER () > 1", "window expressions are not allowed", id="window"),
    pytest.param("list_filter(CSQ, x -> x = 'a') = []", "list_filter() is not allowed",
                 id="lambda"),
    pytest.param("regexp_matches(filter, '(a+)+$')", "regexp_matches() is not allowed",
                 id="regex"),
    pytest.param("$1 = pos", "one boolean expression", id="parameter"),
    pytest.param("COLUMNS(*) > 1", "star expressions", id="columns_star"),
    pytest.param("CAST(pos AS BLOB) IS NULL", "CAST to blob", id="cast_blob"),
    pytest.param("pos = DATE '2020-01-01'", "CAST to date", id="date"),
    pytest.param("filter COLLATE nocase = 'pass'", "collate expressions", id="collate"),
    pytest.param("1 = 1", "references no site column", id="constant"),
    pytest.param("NOT " * 480 + "pos > 1", "nested too deeply|too complex", id="deep"),
    pytest.param(" OR ".join(f"pos={i}" for i in range(150)), "too complex", id="wide"),
]


@pytest.mark.parametrize(("expr", "why"), REFUSED)
def test_site_filter__refused_with_a_reason(expr: str, why: str) -> None:
    with pytest.raises(SiteFilterError, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse(expr)


def test_site_filter__nesting_within_the_limits_parses() -> None:
    sf = parse("(" * 300 + "pos > 1" + ")" * 300 + " AND NOT NOT pos > 50")
    assert SITES.column("pos").filter(pa.array(sf.select(SITES))).to_pylist() == [60]


def test_site_filter__a_trailing_comment_cannot_hide_anything() -> None:
    sf = parse("pos > 40 -- OR 1=1")
    assert sf.canonical == "(pos > 40)"
    assert SITES.column("pos").filter(pa.array(sf.select(SITES))).to_pylist() == [50, 60]


def test_site_filter__a_site_it_fails_on_is_dropped_not_an_error() -> None:
    # an error would say that such a site is stored (a CASE naming one allele): a failing
    # site is dropped like a NULL one, whatever the others do
    sf = parse("CAST(filter AS INTEGER) > 0")
    assert not sf.select(SITES).any()
    pos = SITES.column("pos").to_pylist()
    target = pos[0]
    sf = parse(f"CASE WHEN pos = {target} THEN CAST(filter AS INTEGER) > 0 ELSE TRUE END")
    assert SITES.column("pos").filter(pa.array(sf.select(SITES))).to_pylist() == pos[1:]
    assert "TRY" not in sf.canonical  # the filter as the caller wrote it is what is shown


def test_site_filter__view_names_info_columns_by_their_id() -> None:
    t = pa.table({"pos": [1], "info_VQSLOD": [2.0], "filter": ["PASS"]})
    assert sites_view(t).column_names == ["pos", "VQSLOD", "filter"]


POLICY = """
version: 1
datasets:
  d1:
    consent: {permission: DUO:0000042}
    tier: controlled
  d2:
    consent: {permission: DUO:0000042}
    tier: controlled
    group_columns:
      population: [pop1, pop2]
roles:
  r:
    tier: controlled
    datasets: [d1, d2]
    statistics: [frequency]
    use: GRU
    filters: [filter, VQSLOD]
    k: 11
principals:
  - match: {vault_policy: p}
    role: r
"""


@pytest.mark.parametrize(("expr", "allowed", "reasons"), [
    ("FILTER = 'PASS' AND VQSLOD > 0", True, ()),
    ("filter = 'PASS'", True, ()),
    ("VQSLOD > 0 AND CSQ IS NULL", False, ("filter_not_allowed:CSQ",)),
    ("qual > 30 AND AC > 1", False, ("filter_not_allowed:qual", "filter_not_allowed:AC")),
    ("vqslod > 0", False, ("filter_not_allowed:vqslod",)),
])
def test_site_filter__policy_decides_on_the_fields_it_names(
        tmp_path: Path, expr: str, allowed: bool, reasons: tuple[str, ...]) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = load_policy(tmp_path)
    who = Principal("e1", "someone", ("p",))
    fields = parse(expr).fields
    d = decide(who, QueryRequest("frequency", "d1", filter_fields=fields), policy)
    assert d.allowed is allowed, d.reasons
    for r in reasons:
        assert r in d.reasons
    # a dataset that declares its group columns does not deny site-filter fields
    d = decide(who, QueryRequest("frequency", "d2", filter_fields=fields), policy)
    assert d.allowed is allowed, d.reasons
    # the field<op>value filters of the policy language meet the same list
    d = decide(who, QueryRequest("frequency", "d1", filters=("qual>=30",),
                                 filter_fields=("VQSLOD",)), policy)
    assert not d.allowed and "filter_not_allowed:qual" in d.reasons
