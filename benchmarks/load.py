"""Load: many concurrent researchers against a real ``genovault serve``, then the invariants.

Starts (tests/support/served.py) the embedded, persistent OpenBao, the demo cohort ingested
through the pipeline role, userpass users of several roles and ``python -m vault.cli serve``
on loopback as a subprocess. Then ``--clients`` virtual users (asyncio + httpx, one
connection each, no think time unless ``--think-ms``) send a mixed workload for
``--seconds``:

* researcher-a (controlled tier): frequency per population of a random 20 kb region (JSON),
  overall frequency of a region (Arrow), genotype counts per sex, presence of a known
  variant, association (case/control) of a region, ``POST /sql`` over the frequency view,
  a Beacon v2 sequence query (``/beacon/v2/g_variants``);
* researcher-b and researcher-b2 (registered tier: DP noise, ε charged to their budgets of
  ``--dp-budget``): frequency of a small region, presence, a Beacon query;
* refusals that must be refused: a token Vault never issued (401), a user without any role
  (403), researcher-b asking for group_by (403) and for SQL (403, no noisy version), the
  auditor asking for a statistic (404: the dataset is not visible to that role).

A request is an **error** if it raised (timeout, connection), got a status its kind does not
expect (a DP request may also be refused ``429 budget_exhausted``: intended), or an answer
without a query id. Afterwards, with the API still running:

* audit_complete: every query id the answers carried appears exactly once in the API's
  audit log, the log holds no other new record, and ``vault.audit.verify`` (what
  ``genovault audit verify`` runs) passes against the anchor in Vault;
* ledger_consistent: per query and per principal, the ε in the ledger equals the ε the
  audit records say was charged, and no principal spent more than its budget;
* answers_stable: ``--reask`` answers (200s, sampled) asked again one at a time give the
  same body minus the query id / audit pointers and the budget bookkeeping (DP answers
  repeat their noise: released cells are reused).

Goals (reported, not asserted here): 0 errors, p99 <= 200 ms. Ends with one JSON line:
{"bench": "load", "clients", "requests", "errors", "p50_ms", "p99_ms", "audit_complete",
"ledger_consistent", ...}. ``cpu_ms_per_request`` splits the CPU time (user + system, from
/proc) spent during the timed run by the API process, the OpenBao process and this load
generator, per request: on a shared machine it moves less with other work than p99 does;
``loadavg`` is the 1/5/15-minute load average at the end of the timed run.
``audit_turn`` (from the API's ``/metrics``): how busy the one serial step of every request,
the audit append (chain, synchronous write, anchor write), was during the timed run —
``utilisation`` (time held ÷ run time), ``hold_ms`` and ``wait_ms`` per append (means): with
closed-loop clients a utilisation near 1 means the requests queue there.

    python benchmarks/load.py                       # 50 clients, 60 s
    python benchmarks/load.py --clients 10 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from tests.support.served import (  # noqa: E402
    DEMO,
    Served,
    count_ids,
    ledger_matches_audit,
    query_ids_of,
    served,
)

DATASET = "demo"
CONTIG_LEN = 1_000_000
DP_KINDS = ("b_frequency", "b_presence", "b_beacon")
#: body fields that differ between two askings of the same question by design
VOLATILE = {"query_id", "queryId", "queryIds", "epsilon_spent", "epsilon_remaining",
            "new_cells", "reused_cells"}


@dataclass
class Req:
    kind: str
    user: str
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)


@dataclass
class Result:
    req: Req
    status: int | None
    ms: float
    ids: list[str]
    body: bytes = b""
    error: str | None = None
    reason: str | None = None
    t_start: float = 0.0  # time.monotonic() when sent
    t_end: float = 0.0  # ... and when answered (or failed)


@dataclass
class Workload:
    variants: list[tuple[int, str, str]]
    rng: random.Random = field(default_factory=random.Random)

    def region(self, width: int) -> str:
        start = self.rng.randint(1, CONTIG_LEN - width)
        return f"20:{start}-{start + width - 1}"

    def variant(self) -> tuple[int, str, str]:
        return self.rng.choice(self.variants)

    def next(self) -> Req:
        kinds = [("a_frequency_groups", 6), ("a_frequency_arrow", 3), ("a_counts_sex", 2),
                 ("a_presence", 3), ("a_association", 2), ("a_sql", 2), ("a_beacon", 3),
                 ("b_frequency", 3), ("b_presence", 3), ("b_beacon", 2),
                 ("refuse_token", 1), ("refuse_norole", 1), ("refuse_group", 1),
                 ("refuse_sql", 1), ("refuse_hidden", 1)]
        kind = self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        return self.make(kind)

    def make(self, kind: str) -> Req:
        base = f"/v1/datasets/{DATASET}"
        b_user = self.rng.choice(("researcher-b", "researcher-b2"))
        pos, ref, alt = self.variant()
        beacon = {"referenceName": "20", "start": pos - 1, "referenceBases": ref,
                  "alternateBases": alt, "datasetIds": DATASET}
        dp = (200, 429)
        table: dict[str, Req] = {
            "a_frequency_groups": Req(kind, "researcher-a", "GET", f"{base}/frequency",
                                      {"region": self.region(20_000),
                                       "group_by": "population"}),
            "a_frequency_arrow": Req(kind, "researcher-a", "GET", f"{base}/frequency",
                                     {"region": self.region(50_000), "format": "arrow"}),
            "a_counts_sex": Req(kind, "researcher-a", "GET", f"{base}/genotype-counts",
                                {"region": self.region(10_000), "group_by": "sex"}),
            "a_presence": Req(kind, "researcher-a", "GET", f"{base}/presence",
                              {"chrom": "20", "pos": pos, "ref": ref, "alt": alt}),
            "a_association": Req(kind, "researcher-a", "GET", f"{base}/association",
                                 {"region": self.region(20_000)}),
            "a_sql": Req(kind, "researcher-a", "POST", f"{base}/sql", json={
                "query": "SELECT count(*) AS n, avg(af) AS mean_af FROM frequency "
                         "WHERE af > 0.05", "region": self.region(50_000)}),
            "a_beacon": Req(kind, "researcher-a", "GET", "/beacon/v2/g_variants", beacon),
            "b_frequency": Req(kind, b_user, "GET", f"{base}/frequency",
                               {"region": self.region(2_000)}, expect=dp),
            "b_presence": Req(kind, b_user, "GET", f"{base}/presence",
                              {"chrom": "20", "pos": pos, "ref": ref, "alt": alt}, expect=dp),
            "b_beacon": Req(kind, b_user, "GET", "/beacon/v2/g_variants", beacon, expect=dp),
            "refuse_token": Req(kind, "wrong", "GET", f"{base}/frequency",
                                {"region": self.region(2_000)}, expect=(401,)),
            "refuse_norole": Req(kind, "nobody", "GET", f"{base}/frequency",
                                 {"region": self.region(2_000)}, expect=(403,)),
            "refuse_group": Req(kind, b_user, "GET", f"{base}/frequency",
                                {"region": self.region(2_000), "group_by": "population"},
                                expect=(403,)),
            "refuse_sql": Req(kind, b_user, "POST", f"{base}/sql",
                              json={"query": "SELECT count(*) FROM frequency",
                                    "region": self.region(2_000)}, expect=(403,)),
            "refuse_hidden": Req(kind, "auditor", "GET", f"{base}/frequency",
                                 {"region": self.region(2_000)}, expect=(404,)),
        }
        return table[kind]


def demo_variants(limit: int = 3000, seed: int = 0) -> list[tuple[int, str, str]]:
    """(pos, ref, alt) of biallelic demo variants (a seeded sample)."""
    out = []
    with gzip.open(DEMO / "demo_cohort.vcf.gz", "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.split("\t", 5)
            if "," not in f[4]:
                out.append((int(f[1]), f[3], f[4]))
    random.Random(seed).shuffle(out)
    return out[:limit]


async def send(client: httpx.AsyncClient, s: Served, req: Req) -> httpx.Response:
    return await client.request(req.method, req.path, params=req.params, json=req.json,
                                headers=s.headers(req.user))


def classify(req: Req, resp: httpx.Response) -> tuple[str | None, str | None]:
    """(error, refusal reason) of an answer."""
    reason = None
    if resp.status_code != 200:
        with contextlib.suppress(ValueError):
            body = resp.json()
            if isinstance(body, dict):
                err = body.get("error")  # a Beacon error document: {errorCode, errorMessage}
                reason = str(body.get("detail") or (err.get("errorMessage") if isinstance(
                    err, dict) else err) or "")[:80]
    if resp.status_code not in req.expect:
        return f"status {resp.status_code} (expected {req.expect}): {resp.text[:200]}", reason
    if resp.status_code == 429 and not (reason or "").startswith("budget_exhausted") and \
            "budget_exhausted" not in resp.text:
        return f"429 that is not budget_exhausted: {resp.text[:200]}", reason
    if not query_ids_of(resp):
        return "answer without a query id", reason
    return None, reason


async def virtual_user(i: int, s: Served, variants: list[tuple[int, str, str]],
                       until: float, think_s: float, timeout: float,
                       out: list[Result], pause_on_failure: float = 0.0) -> None:
    w = Workload(variants, random.Random(1000 + i))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=s.url, timeout=timeout, limits=limits) as client:
        while time.monotonic() < until:
            req = w.next()
            t0 = time.monotonic()
            try:
                resp = await send(client, s, req)
            except httpx.HTTPError as exc:
                t1 = time.monotonic()
                out.append(Result(req, None, (t1 - t0) * 1e3, [],
                                  error=f"{type(exc).__name__}: {exc}"[:200], t_start=t0,
                                  t_end=t1))
                if pause_on_failure:
                    await asyncio.sleep(pause_on_failure)
                continue
            t1 = time.monotonic()
            err, reason = classify(req, resp)
            out.append(Result(req, resp.status_code, (t1 - t0) * 1e3, query_ids_of(resp),
                              resp.content, err, reason, t0, t1))
            if think_s:
                await asyncio.sleep(think_s)


def run_load(s: Served, clients: int, seconds: float, think_ms: float = 0.0,
             timeout: float = 30.0, seed: int = 0, out: list[Result] | None = None,
             pause_on_failure: float = 0.0) -> list[Result]:
    """``clients`` virtual users for ``seconds``; their results (appended to ``out`` as
    they come, if given: a fault test reads it while the load runs). ``pause_on_failure``:
    seconds a user waits after a request that got no answer (the API is down)."""
    variants = demo_variants(seed=seed)
    out = [] if out is None else out

    async def main() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(virtual_user(i + seed * 1000, s, variants, until,
                                            think_ms / 1e3, timeout, out, pause_on_failure)
                               for i in range(clients)))

    asyncio.run(main())
    return out


def warm_up(s: Served) -> None:
    """One request of every kind, sequentially (JIT compile, partition cache): not timed,
    but audited and checked like the rest."""
    w = Workload(demo_variants(), random.Random(7))
    with httpx.Client(base_url=s.url, timeout=120) as c:
        for kind in ("a_frequency_groups", "a_frequency_arrow", "a_counts_sex", "a_presence",
                     "a_association", "a_sql", "a_beacon", "b_frequency", "b_presence",
                     "b_beacon"):
            req = w.make(kind)
            r = c.request(req.method, req.path, params=req.params, json=req.json,
                          headers=s.headers(req.user))
            if r.status_code not in req.expect:
                raise SystemExit(f"warm-up {kind}: {r.status_code} {r.text[:300]}")


# -- the checks afterwards ------------------------------------------------------------------
def check_audit(s: Served, results: list[Result], before: int) -> dict[str, Any]:
    """Every answer's query ids are in the log exactly once; no other new record; verify."""
    records = s.audit_records()
    new = records[before:]
    counts = count_ids(new)
    # a 503 whose record could not be written names the id it would have had: not answered
    withheld = {id(r) for r in results
                if r.status == 503 and b"audit trail cannot" in r.body}
    answered = [q for r in results if id(r) not in withheld for q in r.ids]
    missing = [q for q in answered if counts.get(q, 0) == 0]
    doubled = [q for q, n in counts.items() if n > 1]
    unclaimed = set(counts) - set(answered)
    failed = [r for r in results if r.status is None]
    report = s.verify_audit()
    ok = (not missing and not doubled and not unclaimed and report.ok
          and len(new) == len(set(answered)))
    return {"audit_complete": ok, "audit_records_new": len(new),
            "audit_ids_answered": len(set(answered)), "audit_missing": missing[:5],
            "audit_doubled": doubled[:5], "audit_unclaimed": len(unclaimed),
            "audit_verify_ok": report.ok, "audit_problems": report.problems[:5],
            "withheld_503": len(withheld),
            "requests_without_answer": len(failed)}


def check_ledger(s: Served, budget: float) -> dict[str, Any]:
    ok, why = ledger_matches_audit(s)
    spent = s.ledger_charges()
    over = {p: e for p, e in spent.items() if e > budget + 1e-9}
    return {"ledger_consistent": ok and not over, "ledger_problems": why,
            "ledger_spent": {p[:8]: round(e, 4) for p, e in spent.items()},
            "ledger_over_budget": over}


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def canonical_body(req: Req, body: bytes) -> Any:
    if req.params and req.params.get("format") == "arrow":
        table = pa.ipc.open_stream(body).read_all()
        meta = json.loads(table.schema.metadata[b"genovault"])
        return {"meta": normalise(meta),
                "table": table.replace_schema_metadata(None).to_pylist()}
    return normalise(json.loads(body))


def check_reask(s: Served, results: list[Result], n: int, seed: int = 0) -> dict[str, Any]:
    """Ask ``n`` answered (200) questions again, one at a time; compare the bodies."""
    answered = [r for r in results if r.status == 200 and r.error is None]
    sample = random.Random(seed).sample(answered, min(n, len(answered)))
    diffs: list[str] = []
    with httpx.Client(base_url=s.url, timeout=60) as c:
        for r in sample:
            again = c.request(r.req.method, r.req.path, params=r.req.params, json=r.req.json,
                              headers=s.headers(r.req.user))
            if again.status_code != 200 or \
                    canonical_body(r.req, again.content) != canonical_body(r.req, r.body):
                diffs.append(f"{r.req.kind} {r.req.params or r.req.json}: "
                             f"{again.status_code} {again.text[:200]}")
    return {"answers_stable": not diffs, "reasked": len(sample), "reask_diffs": diffs[:5],
            "reask_requests": len(sample)}


def summarise(results: list[Result], clients: int, seconds: float) -> dict[str, Any]:
    ms = np.array([r.ms for r in results]) if results else np.array([0.0])
    errors = [r for r in results if r.error]
    by_status = Counter(str(r.status) for r in results)
    by_kind = {k: round(float(np.percentile([r.ms for r in results if r.req.kind == k], 99)),
                        1) for k in sorted({r.req.kind for r in results})}
    refusals = Counter(f"{r.status}:{(r.reason or '').split(':')[0][:40]}" for r in results
                       if r.status not in (200, None))
    return {"bench": "load", "clients": clients, "seconds": seconds,
            "requests": len(results), "errors": len(errors),
            "throughput_rps": round(len(results) / seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1),
            "status": dict(by_status), "refusals": dict(refusals), "p99_ms_by_kind": by_kind,
            "error_examples": [f"{r.req.kind}: {r.error}" for r in errors[:5]]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(s: Served, bao_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of the API, the OpenBao server and this process."""
    assert s.proc is not None
    out = {"api": cpu_seconds(s.proc.pid), "client": time.process_time()}
    if bao_pid:
        out["bao"] = cpu_seconds(bao_pid)
    return out


AUDIT_METRICS = {"turns": "genovault_audit_appends_total",
                 "hold_s": "genovault_audit_turn_hold_seconds_total",
                 "wait_s": "genovault_audit_turn_wait_seconds_total"}


def audit_turn_counters(s: Served) -> dict[str, float]:
    """The API's audit-turn counters (``/metrics``)."""
    with httpx.Client(base_url=s.url, timeout=30) as c:
        text = c.get("/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    return {k: values[name] for k, name in AUDIT_METRICS.items()}


def audit_turn(a: dict[str, float], b: dict[str, float], elapsed: float) -> dict[str, float]:
    n = max(1.0, b["turns"] - a["turns"])
    return {"appends": int(b["turns"] - a["turns"]),
            "utilisation": round((b["hold_s"] - a["hold_s"]) / elapsed, 3),
            "hold_ms": round((b["hold_s"] - a["hold_s"]) / n * 1e3, 2),
            "wait_ms": round((b["wait_s"] - a["wait_s"]) / n * 1e3, 2)}


def load_and_check(s: Served, clients: int, seconds: float, reask: int, dp_budget: float,
                   think_ms: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """The whole benchmark on a running ``Served``; the result dict (the JSON line)."""
    warm_up(s)
    before = len(s.audit_records())
    rss0 = s.api_rss_kb()
    bao_pid = s.vault.status().pid
    turn0 = audit_turn_counters(s)
    cpu0, t0 = process_cpu(s, bao_pid), time.monotonic()
    results = run_load(s, clients, seconds, think_ms, seed=seed)
    cpu1, elapsed = process_cpu(s, bao_pid), time.monotonic() - t0
    turn1 = audit_turn_counters(s)
    out = summarise(results, clients, seconds)
    out["cpu_ms_per_request"] = {k: round((cpu1[k] - cpu0[k]) / max(1, len(results)) * 1e3, 2)
                                 for k in cpu0 if k in cpu1}
    out["audit_turn"] = audit_turn(turn0, turn1, elapsed)
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    out["api_rss_mb_before"], out["api_rss_mb_after"] = rss0 // 1024, s.api_rss_kb() // 1024
    out.update(check_audit(s, results, before))
    out.update(check_ledger(s, dp_budget))
    out.update(check_reask(s, results, reask, seed))
    out["goals_met"] = {"zero_errors": out["errors"] == 0, "p99_le_200ms": out["p99_ms"] <= 200}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think-ms", type=float, default=0.0,
                    help="pause of each virtual user between its requests (default 0)")
    ap.add_argument("--reask", type=int, default=200,
                    help="answers asked again one at a time afterwards (default 200)")
    ap.add_argument("--dp-budget", type=float, default=100.0,
                    help="ε budget of the registered tier (the shipped policy: 100)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gv-load-") as tmp, \
            served(Path(tmp), dp_budget=args.dp_budget) as s:
        out = load_and_check(s, args.clients, args.seconds, args.reask, args.dp_budget,
                             args.think_ms, args.seed)
    print(json.dumps(out))
    ok = out["errors"] == 0 and out["audit_complete"] and out["ledger_consistent"] and \
        out["answers_stable"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
