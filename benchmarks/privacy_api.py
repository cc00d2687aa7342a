"""The membership-inference attacks of benchmarks/privacy.py through the real HTTP API.

A real OpenBao dev server (vault.keys.devserver.dev_server, bootstrapped), the simulated
members written to a VCF and ingested through vault.ingest.pipeline.ingest with an
ingest-role token, the API (vault.api.wiring.build_services with the row policies of
benchmarks/privacy_policies/) served by uvicorn on 127.0.0.1 in a thread
(vault.api.inprocess.serve_in_thread), and attackers who are real userpass principals:

* existence: ``GET /v1/datasets/cohort/presence?chrom=1&pos=…&ref=A&alt=G`` per query;
* frequencies: ``POST /v1/datasets/cohort/frequency`` with a batch of variants,
  ``format=arrow``, in chunks of 100 (a chunk the budget cannot cover is refused whole:
  the attacker stops at the first 429).

Rows without a practical budget (none, suppression, noise) use one principal for every
attacker of the row (answers are per-cell, so a shared principal changes nothing but the
number of requests: a repeated cell is answered from the attacker's own memory, as it
would be for free by the ledger). Budgeted rows (budget, default) get one fresh principal
per (target, attack) and per honest researcher, like the in-process table. An attacker
stops at the first ``429 budget_exhausted``; the statistic uses the answers it got.

Afterwards every HTTP answer is checked against the in-process mechanism
(benchmarks.privacy.decide) applied to the same cell: the exact member counts for
controlled rows, and for registered rows the noisy counts the ledger stored for that
principal (``<home>/privacy/ledger.db``, read like ``genovault budget show`` does). The
noise the API drew (ledger counts − exact counts) is compared with the in-process draws of
the same mechanism (standard deviation of the noisy AC).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa

from benchmarks import privacy as bench
from benchmarks import privacy_sim as ps

DATASET = "privacy-attack"
POLICIES = Path(__file__).resolve().parent / "privacy_policies"
PASSWORD = "pw-for-benchmarks-only"
AF_CHUNK = 100


@contextlib.contextmanager
def vault_under_attack(c: ps.Cohort, tmp: Path, policy_dir: Path = POLICIES,
                       log: Callable[[str], None] = lambda m: None,
                       bao: Any = None, quiet: bool = True) -> Iterator[Target]:
    """OpenBao + the members ingested + the API on loopback; yields a ``Target``.

    ``bao``: a running, bootstrapped dev server (``.addr``, ``.root_token``, ``.client()``)
    to use instead of starting one. ``quiet``: send the app's request log lines to
    /dev/null (the benchmark; tests keep logging as it is).
    """
    if bao is None:
        from vault.keys.bootstrap import bootstrap
        from vault.keys.devserver import dev_server

        with dev_server(tmp) as own:
            bootstrap(own.client())
            with vault_under_attack(c, tmp, policy_dir, log, own, quiet) as target:
                yield target
        return
    from vault.api import logs
    from vault.api.app import create_app
    from vault.api.inprocess import serve_in_thread
    from vault.api.wiring import ServiceIdentity, build_services
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.keys import auth as vauth
    from vault.keys.bootstrap import mint_role_token
    from vault.settings import load_settings
    from vault.store.dataset import Store

    t0 = time.perf_counter()
    vcf = ps.write_members_vcf(c, tmp / "members.vcf.gz")
    log(f"members VCF written in {time.perf_counter() - t0:.1f} s")
    root = bao.client()
    home = tmp / "home"
    store = Store(home / "store")
    t0 = time.perf_counter()
    ingest(vcf, DATASET, client=bao.client(mint_role_token(root, "ingest", ttl="1h")),
           store=store, options=IngestOptions(progress=False))
    log(f"ingested through the pipeline in {time.perf_counter() - t0:.1f} s")
    role_id, secret_id = vauth.approle_credentials(root, "service")
    settings = load_settings(home_dir=home, store_dir=home / "store",
                             vault_addr=bao.addr, vault_token=bao.root_token,
                             service_role_id=role_id, service_secret_id=secret_id)
    identity = ServiceIdentity(bao.addr,
                               lambda: vauth.approle_login(bao.addr, role_id, secret_id))
    services = build_services(settings, policy_dir=policy_dir, identity=identity,
                              cache_bytes=512 << 20)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the app's request log lines
    if quiet:
        for h in logs.configure().handlers:
            if isinstance(h, logging.StreamHandler):
                h.setStream(devnull)
    with serve_in_thread(create_app(services)) as url, devnull:
        yield Target(url, bao.addr, root, home)


class Target:
    """The running API and how to make principals for it."""

    def __init__(self, url: str, addr: str, root: Any, home: Path) -> None:
        self.url, self.addr, self.root, self.home = url, addr, root, home
        self._n = 0
        self._lock = threading.Lock()

    def principal(self, row: str) -> httpx.Client:
        """A new userpass user mapped to the row's role, logged in: its HTTP client."""
        from vault.keys import auth as vauth
        from vault.keys.login import userpass_login

        with self._lock:
            self._n += 1
            name = f"att-{row}-{self._n}"
        vauth.create_user(self.root, name, PASSWORD, [f"genovault-attack-{row}"])
        token = userpass_login(self.addr, name, PASSWORD)
        return httpx.Client(base_url=self.url, timeout=120,
                            headers={"Authorization": f"Bearer {token}"})

    def ledger_cells(self) -> dict[str, dict[str, np.ndarray]]:
        """display name -> {cell key -> noisy counts} from the ledger file."""
        from vault.privacy.ledger import ledger_path

        con = sqlite3.connect(ledger_path(self.home))
        try:
            names = dict(con.execute("SELECT DISTINCT principal, display_name FROM charges"))
            out: dict[str, dict[str, np.ndarray]] = {}
            for principal, cell, counts in con.execute(
                    "SELECT principal, cell, counts FROM cells"):
                out.setdefault(str(names.get(principal, principal)), {})[cell] = np.asarray(
                    json.loads(counts), np.int64)
            return out
        finally:
            con.close()


    def presence_log(self) -> dict[str, list[tuple[str, bool, int, int]]]:
        """display name -> the presence answers the member budget gave it, in order:
        (variant key, answer, AC counted, noise drawn), from the ledger file."""
        from vault.privacy.ledger import ledger_path

        con = sqlite3.connect(ledger_path(self.home))
        try:
            out: dict[str, list[tuple[str, bool, int, int]]] = {}
            for name, variant, ans, ac, z in con.execute(
                    "SELECT COALESCE(display_name, principal), variant, answer, ac_eff, noise "
                    "FROM presence_answers ORDER BY id"):
                out.setdefault(str(name), []).append((str(variant), bool(ans), int(ac),
                                                      int(z)))
            return out
        finally:
            con.close()

    def member_losses(self, name: str) -> dict[int, tuple[float, bool]]:
        """member -> (loss in nats, excluded) for the principal shown as ``name``."""
        from vault.privacy.ledger import ledger_path

        con = sqlite3.connect(ledger_path(self.home))
        try:
            (principal,) = con.execute("SELECT DISTINCT principal FROM presence_answers "
                                       "WHERE display_name = ?", (name,)).fetchone()
            return {int(m): (float(lo), bool(ex)) for m, lo, ex in con.execute(
                "SELECT member, loss, excluded FROM member_loss WHERE principal = ?",
                (principal,))}
        finally:
            con.close()


class HttpOracle:
    """benchmarks.privacy's oracle interface answered by the API over HTTP."""

    def __init__(self, target: Target, c: ps.Cohort, row: bench.Row) -> None:
        self.t, self.c, self.row = target, c, row
        # one principal for every attacker only where no budget of any kind applies
        self.shared = row.cap is None and row.presence is None
        self._clients: dict[Hashable, httpx.Client] = {}
        self._names: dict[Hashable, str] = {}
        #: per principal: site -> answer (bool presence / float AF, nan = withheld)
        self.presence: dict[str, dict[int, bool]] = {}
        self.afs: dict[str, dict[int, float]] = {}
        self.requests = 0
        self.refused = 0

    def client(self, key: Hashable) -> tuple[httpx.Client, str]:
        k = "shared" if self.shared else key
        if k not in self._clients:
            cl = self.t.principal(self.row.name)
            b = cl.get("/v1/budget")
            b.raise_for_status()
            self._clients[k] = cl
            self._names[k] = str(b.json()["principal"])
        return self._clients[k], self._names[k]

    def close(self) -> None:
        for cl in self._clients.values():
            cl.close()

    def beacon(self, key: Hashable, sites: np.ndarray) -> np.ndarray:
        cl, name = self.client(key)
        seen = self.presence.setdefault(name, {})
        out: list[bool] = []
        for s in np.asarray(sites, np.int64).tolist():
            if s not in seen:
                r = cl.get(f"/v1/datasets/{DATASET}/presence",
                           params={"chrom": "1", "pos": int(self.c.pos[s]), "ref": "A",
                                   "alt": "G"})
                self.requests += 1
                if r.status_code == 429:
                    self.refused += 1
                    assert r.json()["detail"].startswith("budget_exhausted"), r.text
                    break
                if r.status_code != 200:
                    raise RuntimeError(f"presence: {r.status_code} {r.text[:300]}")
                seen[s] = r.json()["exists"] is True
            out.append(seen[s])
        return np.array(out, bool)

    def af(self, key: Hashable, sites: np.ndarray) -> np.ndarray:
        cl, name = self.client(key)
        seen = self.afs.setdefault(name, {})
        sites = np.asarray(sites, np.int64)
        out: list[float] = []
        for i in range(0, sites.size, AF_CHUNK):
            chunk = sites[i: i + AF_CHUNK]
            ask = [s for s in chunk.tolist() if s not in seen]
            if ask:
                body = {"variants": [{"chrom": "1", "pos": int(self.c.pos[s]), "ref": "A",
                                      "alt": "G"} for s in ask],
                        "format": "arrow", "limit": len(ask)}
                r = cl.post(f"/v1/datasets/{DATASET}/frequency", json=body)
                self.requests += 1
                if r.status_code == 429:
                    self.refused += 1
                    break
                if r.status_code != 200:
                    raise RuntimeError(f"frequency: {r.status_code} {r.text[:300]}")
                got = arrow_af(r.content)
                for s in ask:  # a variant not in the answer (not stored, omitted) is withheld
                    seen[s] = got.get(int(self.c.pos[s]), float("nan"))
            out.extend(seen[s] for s in chunk.tolist())
        return np.array(out, np.float64)


def arrow_af(content: bytes) -> dict[int, float]:
    """pos -> overall AF (nan when suppressed) of one Arrow frequency answer."""
    table = pa.ipc.open_stream(content).read_all()
    meta = orjson.loads(table.schema.metadata[b"genovault"])
    if table.num_rows != meta["count"]:
        raise RuntimeError("arrow page and envelope disagree")
    pos = table.column("pos").to_pylist()
    af = table.column("overall.af").to_pylist()
    return {int(p): (float("nan") if a is None else float(a))
            for p, a in zip(pos, af, strict=True)}


def check_equal(c: ps.Cohort, oracle: HttpOracle, target: Target) -> dict[str, Any]:
    """Every HTTP answer vs benchmarks.privacy.decide on the same cell's released counts;
    for a row with the member budget, every presence answer vs the in-process mechanism
    (vault.privacy.presence.MemberState) replayed over the exact genotypes with the noise
    the API drew (from the ledger): the same AC counted, the same exclusions, the same
    answer."""
    row = oracle.row
    counts, stored = bench.exact_counts(c)
    replay: dict[str, dict[int, bool]] = {}
    replay_bad = replayed = 0
    if row.presence is not None:
        from vault.privacy.presence import MemberState

        site_at = {int(p): i for i, p in enumerate(c.pos.tolist())}
        p = row.presence_params()
        for name, log in target.presence_log().items():
            st = MemberState(c.n, p, p.threshold(row.k))
            got = replay.setdefault(name, {})
            for variant, ans, ac, z in log:
                s = site_at[int(variant.split(":")[1])]
                m = c.members[s]
                idx = np.flatnonzero(m)
                mine = st.ask(s, idx, m[idx], lambda z=z: z)
                replayed += 1
                replay_bad += mine != ans or st.log[-1][1] != ac
                got[s] = ans
    cells = target.ledger_cells() if row.tier == "registered" else {}
    n_p = n_a = bad_p = bad_a = uncharged = bad_uncharged = 0
    noise: list[int] = []
    noise_sites: list[int] = []
    for name in set(oracle.presence) | set(oracle.afs):
        if row.presence is not None:  # presence is checked by the replay above
            for s, v in oracle.presence.get(name, {}).items():
                n_p += 1
                bad_p += replay.get(name, {}).get(s) != v
            sites = sorted(oracle.afs.get(name, {}))
            if not sites:
                continue
        else:
            sites = sorted(set(oracle.presence.get(name, {})) | set(oracle.afs.get(name, {})))
        idx = np.array(sites, np.int64)
        if row.tier == "registered":
            # a presence query always draws a cell, and so does a frequency query for a
            # list of variants, also for one the dataset does not hold (never listed)
            mine = cells.get(name, {})
            keys = [f"1:{int(c.pos[s])}:A:G|overall" for s in sites]
            have = np.array([k in mine for k in keys], bool)
            uncharged += int((~have).sum())
            bad_uncharged += int((~have & stored[idx]).sum())
            rel = np.stack([mine[k] if k in mine else np.array([c.n, 0, 0, 0], np.int64)
                            for k in keys])
            ex = counts[idx]
            d = (rel[:, 1] + 2 * rel[:, 2]) - (ex[:, 1] + 2 * ex[:, 2])
            noise.extend(d[have & stored[idx]].tolist())
            noise_sites.extend(idx[have & stored[idx]].tolist())
        else:
            rel = counts[idx]
            have = np.ones(idx.size, bool)
        want = bench.decide(rel, stored[idx] & have, row, counts[idx])
        at = {s: i for i, s in enumerate(sites)}
        for s, v in (oracle.presence.get(name, {}) if row.presence is None else {}).items():
            n_p += 1
            bad_p += bool(want["beacon"][at[s]]) != v
        for s, v in oracle.afs.get(name, {}).items():
            n_a += 1
            w = want["af"][at[s]]
            bad_a += not ((np.isnan(w) and np.isnan(v)) or abs(w - v) < 1e-9)
    out: dict[str, Any] = {"presence_checked": n_p, "presence_mismatches": bad_p,
                           "af_checked": n_a, "af_mismatches": bad_a,
                           "uncharged_cells": uncharged,
                           "uncharged_but_stored": bad_uncharged}
    if row.presence is not None:
        out["presence_replayed"] = replayed
        out["presence_replay_mismatches"] = replay_bad
    if noise:
        same = counts[np.array(noise_sites, np.int64)]  # the same cells, drawn in-process
        inproc = bench.release(same, row) - same
        ac_in = inproc[:, 1] + 2 * inproc[:, 2]
        out["noise_ac_sd_http"] = float(np.std(noise))
        out["noise_ac_sd_inprocess"] = float(np.std(ac_in))
        out["noise_cells"] = len(noise)
    return out


def run(c: ps.Cohort, rows: Sequence[bench.Row], people: int, queries: Sequence[int],
        log: Callable[[str], None] = print, workload_people: int = 2,
        policy_dir: Path = POLICIES) -> dict[str, Any]:
    """The attack table through HTTP for ``people`` members and as many non-members, plus
    the equality check of every answer; the number of HTTP requests per row."""
    tmp = Path(tempfile.mkdtemp(prefix="gv-privacy-api-"))
    try:
        out: dict[str, Any] = {"people": people, "queries": list(queries), "table": {},
                               "checks": {}, "requests": {}, "seconds": {}}
        with vault_under_attack(c, tmp, policy_dir, log) as target:
            for row in rows:
                t0 = time.perf_counter()
                oracle = HttpOracle(target, c, row)
                try:
                    r = bench.evaluate(c, oracle, people, queries,
                                       workload_people=workload_people)
                finally:
                    oracle.close()
                out["table"][row.name] = {k: round(v, 4) for k, v in r.items()}
                out["checks"][row.name] = check_equal(c, oracle, target)
                out["requests"][row.name] = {"requests": oracle.requests,
                                             "refused_429": oracle.refused}
                out["seconds"][row.name] = round(time.perf_counter() - t0, 1)
                log(f"http {row.name}: {json.dumps(out['table'][row.name])} "
                    f"{json.dumps(out['checks'][row.name])} {out['requests'][row.name]} "
                    f"{out['seconds'][row.name]} s")
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
