"""The data-quality and representation report on the demo cohort, with a real OpenBao.

Numbers are checked against a direct computation from the VCF and the sample sheet (not
through GenoVault); a sheet with a 3-person group checks small-cell and complementary
suppression; the HTML is opened in headless Chromium with the network blocked.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import numpy as np
import pytest
import yaml

from vault.errors import ConfigError
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import auth as vauth
from vault.keys.bootstrap import BootstrapReport, mint_role_token
from vault.keys.devserver import DevServer
from vault.keys.kms import Keyring
from vault.query.service import Disclosure, QueryService
from vault.report import run as report_run
from vault.report.build import build_representation
from vault.report.html import render_html
from vault.report.run import ReportDenied, ReportResult
from vault.settings import Settings, load_settings
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[1] / "vault" / "sample_data"
POLICIES = Path(__file__).resolve().parents[1] / "policies" / "access"
K = 11
RARE = "RARE_DIAGNOSIS_X"


@dataclass
class Env:
    home: Path
    store: Store
    bao: DevServer
    admin: Settings
    query_client: hvac.Client

    def settings(self, token: str) -> Settings:
        return self.admin.model_copy(update={"vault_token": self.admin.vault_token.__class__(
            token)})


@pytest.fixture(scope="module")
def env(bao_server: DevServer, bootstrapped: BootstrapReport,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = bao_server.client()
    home = tmp_path_factory.mktemp("report-home")
    store = Store(home / "store")
    ing = bao_server.client(mint_role_token(root, "ingest", ttl="15m"))
    ingest(DEMO / "demo_cohort.vcf.gz", "demo", client=ing, store=store,
           sample_sheet=DEMO / "demo_cohort_samples.tsv", options=IngestOptions(progress=False))
    ingest(DEMO / "demo_cohort.vcf.gz", "rare", client=ing, store=store,
           sample_sheet=_rare_sheet(home), options=IngestOptions(progress=False))
    role_id, secret_id = vauth.approle_credentials(root, "service")
    policy = yaml.safe_load((POLICIES / "genovault.yaml").read_text())
    policy["datasets"]["rare"] = {**policy["datasets"]["demo"],
                                  "description": "demo with a 3-person group"}
    policy["datasets"]["rare"]["group_columns"] = {
        **policy["datasets"]["demo"]["group_columns"],
        "population": ["pop1", "pop2", "pop3", RARE]}
    policy["roles"]["admin"]["datasets"] = ["demo", "rare"]
    (home / "policy").mkdir()
    (home / "policy" / "genovault.yaml").write_text(yaml.safe_dump(policy))
    admin = load_settings(home_dir=home, store_dir=home / "store", vault_addr=bao_server.addr,
                          policy_dir=home / "policy",
                          vault_token=mint_role_token(root, "admin", ttl="30m"),
                          service_role_id=role_id, service_secret_id=secret_id)
    yield Env(home, store, bao_server, admin,
              bao_server.client(mint_role_token(root, "query", ttl="30m")))


def generate(*args: object, **kwargs: object) -> ReportResult:
    """``generate`` with this module's own audit anchor (other tests damage the default one
    on the shared dev server on purpose)."""
    return report_run.generate(*args, anchor_path="chain/report-tests", **kwargs)  # type: ignore[arg-type]


def _rare_sheet(folder: Path) -> Path:
    lines = (DEMO / "demo_cohort_samples.tsv").read_text().splitlines()
    head, rows = lines[0], lines[1:]
    pi = head.split("\t").index("population")
    for i in range(3):  # three people with a rare label
        parts = rows[i].split("\t")
        parts[pi] = RARE
        rows[i] = "\t".join(parts)
    sheet = folder / "rare_sheet.tsv"
    sheet.write_text("\n".join([head, *rows]) + "\n")
    return sheet


@pytest.fixture(scope="module")
def demo_report(env: Env) -> ReportResult:
    out = env.home / "out"
    return generate(env.admin, "demo", out_html=out / "demo.html", out_json=out / "demo.json")


@pytest.fixture(scope="module")
def rare_report(env: Env) -> ReportResult:
    out = env.home / "out"
    return generate(env.admin, "rare", out_html=out / "rare.html", out_json=out / "rare.json")


# -- the direct computation -----------------------------------------------------------------
def _sheet() -> list[dict[str, str]]:
    lines = (DEMO / "demo_cohort_samples.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


@dataclass
class Direct:
    called: np.ndarray  # per sample, over all variant rows
    rows: int
    ti: int
    tv: int


def _direct() -> Direct:
    called = None
    rows = 0
    sites: list[tuple[str, int, str, str, int, int]] = []
    with gzip.open(DEMO / "demo_cohort.vcf.gz", "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            alts = f[4].split(",")
            gts = [g.split(":")[0] for g in f[9:]]
            ok = np.array(["." not in g for g in gts])
            called = ok.astype(np.int64) * len(alts) + (0 if called is None else called)
            rows += len(alts)
            called_gts = [re.split(r"[/|]", g) for g in gts if "." not in g]
            for i, alt in enumerate(alts, 1):  # split like bcftools norm -m- (format.md)
                alleles = [a for g in called_gts for a in g]
                ac = sum(a == str(i) for a in alleles)
                sites.append((f[0], int(f[1]), f[3], alt, ac, len(alleles) - ac))
    # the report's rule: listed rows (AC and REF not 1..k-1), a position with two listed rows
    # is a split multiallelic site and left out, AC 0 is not a variant
    listed = [x for x in sites if not (0 < x[4] < K or 0 < x[5] < K)]
    per_pos = Counter((x[0], x[1]) for x in listed)
    ti = tv = 0
    for chrom, pos, ref, alt, ac, _ in listed:
        if per_pos[(chrom, pos)] > 1 or len(ref) != 1 or len(alt) != 1 or ac == 0:
            continue
        if {ref, alt} in ({"A", "G"}, {"C", "T"}):
            ti += 1
        else:
            tv += 1
    assert called is not None
    return Direct(called, rows, ti, tv)


# -- tests ------------------------------------------------------------------------------------
def test_report__numbers_equal_a_direct_computation_on_the_demo_cohort(
        demo_report: ReportResult) -> None:
    r = demo_report.report
    sheet = _sheet()
    direct = _direct()
    assert r["cohort"]["samples"] == len(sheet) == 300
    assert r["cohort"]["variant_rows"] == direct.rows
    for col in ("population", "sex", "phenotype"):
        want = Counter(s[col] for s in sheet)
        got = {g: c["samples"] for g, c in r["representation"]["columns"][col]["groups"].items()}
        assert got == dict(want), col
    x = next(t for t in r["representation"]["crosstabs"]
             if (t["rows"], t["columns"]) == ("population", "sex"))
    want = Counter((s["population"], s["sex"]) for s in sheet)
    for i, pop in enumerate(x["row_names"]):
        for j, sex in enumerate(x["column_names"]):
            assert x["cells"][i][j]["samples"] == want[(pop, sex)]
    # overall call rate over every variant row: QC, per-sample mean and the VCF agree
    rate = direct.called.sum() / (direct.rows * 300)
    assert r["quality"]["overall"]["call_rate"] == pytest.approx(rate, abs=1e-12)
    assert r["quality"]["sample_overall"]["mean_call_rate"] == pytest.approx(rate, abs=1e-12)
    per_sample = direct.called / direct.rows
    for pop in ("pop1", "pop2", "pop3"):
        members = np.array([s["population"] == pop for s in sheet])
        got = r["representation"]["group_quality"]["population"]["groups"][pop]
        assert got["mean_call_rate"] == pytest.approx(per_sample[members].mean(), abs=1e-12)
    t = r["quality"]["titv"]
    assert (t["transitions"], t["transversions"]) == (direct.ti, direct.tv)
    assert t["ratio"] == pytest.approx(direct.ti / direct.tv)
    # histograms hold every sample, no bin 1..k-1
    for key in ("sample_call_rate", "sample_heterozygosity"):
        counts = [b["count"] for b in r["quality"][key]["bins"]]
        assert sum(counts) == 300
        assert not any(0 < c < K for c in counts)
    assert r["summary"][0].startswith("300 samples")


def test_report__no_sample_id_pseudonym_or_per_sample_value(
        env: Env, demo_report: ReportResult) -> None:
    html = demo_report.html.read_text()  # type: ignore[union-attr]
    js = demo_report.json.read_text()  # type: ignore[union-attr]
    reader = DatasetReader(env.store, "demo", Keyring(env.query_client, "demo"))
    pseudonyms = reader.samples(["pseudonym"]).column("pseudonym").to_pylist()
    assert len(pseudonyms) == 300
    direct = _direct()
    per_sample = direct.called / direct.rows
    for text in (html, js):
        assert "DEMO0" not in text
        for p in pseudonyms:
            assert p not in text
        for v in set(per_sample.tolist()):
            assert repr(v) not in text and f"{100 * v:.4f}" not in text


def test_report__small_group_is_suppressed_with_complementary_cells(
        rare_report: ReportResult) -> None:
    r = rare_report.report
    text = json.dumps(r) + rare_report.html.read_text()  # type: ignore[union-attr]
    assert RARE not in text
    pops = r["representation"]["columns"]["population"]["groups"]
    hidden = pops["(group under minimum size #1)"]
    assert hidden["samples"] is None and hidden["suppressed"] == "count<k"
    # a second population cell is suppressed, so the 3 cannot be had as 300 − the others
    assert sum(c["samples"] is None for c in pops.values()) >= 2
    # every shown 1-D table: the cohort minus the shown cells never isolates one hidden cell
    for col, info in r["representation"]["columns"].items():
        assert sum(c["samples"] is None for c in info["groups"].values()) != 1, col
    x = next(t for t in r["representation"]["crosstabs"]
             if (t["rows"], t["columns"]) == ("population", "sex"))
    row = x["row_names"].index("(group under minimum size #1)")
    assert all(c["samples"] is None for c in x["cells"][row])  # zeros too
    # the measurement-quality table shows no size the representation table withholds
    for g, q in r["representation"]["group_quality"]["population"]["groups"].items():
        assert q["samples"] == pops[g]["samples"]
    # no row or column of the cross-tab has exactly one unknown (with its total)
    for i, cells in enumerate(x["cells"]):
        unknown = sum(c["samples"] is None for c in cells) + (x["row_totals"][i] is None)
        assert unknown != 1
    for j in range(len(x["column_names"])):
        unknown = sum(x["cells"][i][j]["samples"] is None for i in range(len(x["cells"])))
        assert unknown + (x["column_totals"][j] is None) != 1
    reasons = {(s["table"], s["reason"]) for s in r["disclosure"]["suppressed"]}
    assert ("samples per population", "count<k") in reasons
    assert any(reason == "complementary" for _, reason in reasons)
    assert r["disclosure"]["suppressed_cells"] >= 1
    # refused for its size: no per-group statistics, counted
    assert r["representation"]["group_quality"]["population"]["refused_groups"] == 1
    assert "suppressed" in rare_report.html.read_text()  # type: ignore[union-attr]


def test_report__reference_ratio_and_summary(env: Env, tmp_path: Path) -> None:
    ref = tmp_path / "target.tsv"
    ref.write_text("column\tgroup\texpected_share\npopulation\tpop1\t0.6\n"
                   "population\tpop2\t0.22\npopulation\tpop3\t0.18\n")
    res = generate(env.admin, "demo", out_json=tmp_path / "r.json", reference=ref)
    rr = res.report["representation"]["reference"]["population"]
    assert rr["pop1"]["ratio"] == pytest.approx((100 / 300) / 0.6)
    assert rr["pop3"]["expected_share"] == 0.18
    summary = " ".join(res.report["summary"])
    assert "Group pop1 (population) is 33.3 % of the cohort vs 60.0 % of the reference" \
        in summary
    assert "its call rate is" in summary


@pytest.mark.parametrize(("body", "message"), [
    ("population\tpop1\t0.5\npopulation\tpop2\t0.3\npopulation\tpop3\t0.1\n", "sum to 0.9"),
    ("population\tpop1\t0.5\npopulation\tpopX\t0.5\n", "'popX' is not a reportable group"),
    ("population\t" + RARE + "\t0.5\npopulation\tpop1\t0.5\n", "is not a reportable group"),
    ("ancestry\tpop1\t1.0\n", "unknown grouping column 'ancestry'"),
    ("population\tpop1\tlots\n", "is not a number"),
])
def test_report__bad_reference_is_refused_clearly(env: Env, tmp_path: Path, body: str,
                                                  message: str) -> None:
    ref = tmp_path / "target.tsv"
    ref.write_text("column\tgroup\texpected_share\n" + body)
    with pytest.raises(ConfigError, match=re.escape(message)):
        generate(env.admin, "rare", out_json=tmp_path / "r.json", reference=ref)
    assert not (tmp_path / "r.json").exists()


def test_report__audited_with_one_record_and_refused_for_other_roles(
        env: Env, tmp_path: Path) -> None:
    log = env.home / "audit" / "audit.jsonl"
    before = log.read_text().count("\n") if log.exists() else 0
    res = generate(env.admin, "demo", out_json=tmp_path / "r.json")
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1
    rec = json.loads(lines[-1])
    assert rec["query_id"] == res.query_id == res.report["generated_by"]["query_id"]
    assert rec["request"]["action"] == "report" and rec["decision"]["allowed"] is True
    assert rec["result"]["status"] == 200
    # a query-role token has no access-policy role: refused, audited, nothing written
    query_token = mint_role_token(env.bao.client(), "query", ttl="5m")
    with pytest.raises(ReportDenied, match="no_role"):
        generate(env.settings(query_token), "demo", out_json=tmp_path / "q.json")
    assert not (tmp_path / "q.json").exists()
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["result"]["status"] == 403 and rec["decision"]["allowed"] is False


# -- the browser ------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  # no network: every host name fails to resolve, every proxied request hits
                  # a closed port
                  "--host-resolver-rules=MAP * ~NOTFOUND",
                  "--proxy-server=http://127.0.0.1:9"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # scripts/install.sh installs it: missing is a failure, never a skip
        pytest.fail("chromium is not installed: run scripts/install.sh (apt-get install "
                    "chromium)")
    return exe


def _run_chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{name}"
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_report__html_renders_offline_in_chromium(rare_report: ReportResult,
                                                  tmp_path: Path) -> None:
    page = rare_report.html
    assert page is not None
    html = page.read_text()
    # nothing to fetch: no http(s) URL in any src/href/url(), no script, no link element
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()
    shot = tmp_path / "report.png"
    netlog = tmp_path / "netlog.json"
    out = _run_chromium(tmp_path, "shot", "--window-size=1280,7000",
                        f"--screenshot={shot}", f"--log-net-log={netlog}", page.as_uri())
    assert shot.exists(), out.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1280, 7000)
    px = np.asarray(img)
    assert px.std() > 10  # not a blank page
    assert (px < 100).mean() > 0.005  # text and plots drawn
    print(f"screenshot: {shot}")
    # the page asked for nothing over the network (file:// only)
    log = netlog.read_text(errors="replace")
    urls = set(re.findall(r'"url"\s*:\s*"([^"]+)"', log))
    other = {u for u in urls if not u.startswith(("file:", "data:", "chrome:", "about:"))}
    # Chromium's own clock check (clients2.google.com/time) may show up: it is the browser's,
    # not the page's, and it fails here like every request; nothing else may be asked for
    browser_own = re.compile(r"^https?://[a-z0-9.-]+\.(?:google\.com|googleapis\.com|gvt1\.com)/")
    assert all(browser_own.match(u) for u in other), other
    dom = _run_chromium(tmp_path, "dom", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert text.count("<svg") >= 9
    for plot in ("variant call rate", "per-sample call rate", "per-sample heterozygosity",
                 "hwe qq", "sfs", "share by population", "call rate by population"):
        assert f'data-plot="{plot}"' in text, plot
    for name in ("pop1", "pop2", "pop3", "case", "control", "Summary", "Representation",
                 "Data quality", "Disclosure", "(group under minimum size #1)"):
        assert name in text, name
    assert 'id="report-end"' in text  # rendered to the end
    assert RARE not in text and "DEMO0" not in text


# -- the representation part (researchers) -----------------------------------------------------
@pytest.fixture(scope="module")
def service(env: Env) -> QueryService:
    return QueryService(env.store, lambda: report_run.service_client(env.admin))


def test_report__representation_part_shows_the_whole_reports_cells(
        service: QueryService, rare_report: ReportResult) -> None:
    d = Disclosure(k=K, min_group_size=20, tier="controlled", rare_max_ac=10)
    whole = rare_report.report["representation"]
    for cols in (["population", "sex", "phenotype"], ["population"], ["sex", "population"],
                 ["phenotype"]):
        part = build_representation(service, "rare", d, cols)
        rep = part["representation"]
        assert list(rep["columns"]) == [c for c in ("population", "sex", "phenotype")
                                        if c in cols]
        # whichever columns are asked for, each shown cell is the whole report's cell (and so
        # is each suppressed one): no two requests can be subtracted from each other
        for col in cols:
            assert rep["columns"][col] == whole["columns"][col]
            assert rep["group_quality"][col] == whole["group_quality"][col]
        for x in rep["crosstabs"]:
            assert x == next(w for w in whole["crosstabs"]
                             if (w["rows"], w["columns"]) == (x["rows"], x["columns"]))
        assert "quality" not in part and "answers" not in part["disclosure"]
        text = json.dumps(part) + render_html(part)
        assert RARE not in text and "DEMO0" not in text
        assert 'id="quality"' not in render_html(part)
    part = build_representation(service, "rare", d, ["population"])
    pops = part["representation"]["columns"]["population"]["groups"]
    assert pops["(group under minimum size #1)"]["samples"] is None
    assert sum(c["samples"] is None for c in pops.values()) >= 2
    reasons = {(s["table"], s["reason"]) for s in part["disclosure"]["suppressed"]}
    assert ("samples per population", "count<k") in reasons
    assert ("samples per population", "complementary") in reasons
    assert part["disclosure"]["suppressed_cells"] >= 1
    assert part["summary"][0].startswith("300 samples; mean per-sample call rate")


def test_report__representation_refuses_unknown_columns(service: QueryService) -> None:
    d = Disclosure(k=K, min_group_size=20, tier="controlled", rare_max_ac=10)
    with pytest.raises(ConfigError, match="unknown group column"):
        build_representation(service, "demo", d, ["ancestry"])
    with pytest.raises(ConfigError, match="does not show"):
        build_representation(service, "demo", d, ["sex"], reference={"population": {
            "pop1": 1.0}})
