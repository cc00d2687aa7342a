"""A real ``genovault serve`` subprocess over a real, persistent OpenBao, for reliability tests
and benchmarks/load.py.

``served(tmp)`` starts, in a fresh GenoVault home:

* the embedded OpenBao (``vault.keys.embedded.EmbeddedVault``: ``bao server`` with PebbleDB
  storage, initialised, unsealed and bootstrapped). It is not a ``-dev`` server, so it can be
  sealed, unsealed, stopped and started again with its keys, tokens and audit anchor intact;
* the demo cohort (vault/sample_data) ingested through the pipeline's AppRole;
* userpass users of several roles (``USERS``), each logged in once (``Served.tokens``);
* optionally a :class:`~tests.support.slowproxy.SlowProxy` between the API and Vault;
* ``python -m vault.cli serve`` on a free loopback port, configured like an external-Vault
  deployment: ``VAULT_ADDR`` (the proxy, or Vault itself), the service's AppRole
  credentials (``GENOVAULT_SERVICE_ROLE_ID`` / ``_SECRET_ID``) and a ``VAULT_TOKEN`` that
  holds nothing but Vault's ``default`` policy (the API never uses it), the access policy of
  ``write_policy`` (the shipped one with a generous rate limit) in ``GENOVAULT_POLICY_DIR``.

What the reliability checks read afterwards: :meth:`Served.audit_records` (the API's audit
log), :meth:`Served.verify_audit` (``vault.audit.verify`` against the Vault anchor),
:meth:`Served.ledger_charges` (the privacy ledger).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hvac
import yaml

from tests.support.slowproxy import SlowProxy

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "vault" / "sample_data"
SHIPPED_POLICY = ROOT / "policies" / "access" / "genovault.yaml"
PASSWORD = "pw-for-tests-only"
#: user -> Vault policies (the demo users of `genovault quickstart`, two more researchers on
#: the registered tier so that more than one budget is charged, one user without any role)
USERS = {
    "researcher-a": ["genovault-researcher-a"],
    "researcher-b": ["genovault-researcher-b"],
    "researcher-b2": ["genovault-researcher-b"],
    "auditor": ["genovault-auditor"],
    "nobody": ["some-unrelated-policy"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port p with p and p + 1 free (the embedded vault's API and cluster listeners)."""
    for _ in range(100):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no free port pair on 127.0.0.1")


def write_policy(folder: Path, rate: int = 1_000_000, dp_budget: float | None = None) -> Path:
    """The shipped access policy with ``rate`` requests per minute for the researcher roles
    (the shipped 60/min would make a load test a rate-limit test) and, if given, the
    registered tier's ``dp_budget``."""
    policy = yaml.safe_load(SHIPPED_POLICY.read_text())
    for role in ("grouped-researcher", "overall-researcher"):
        policy["roles"][role]["rate_limit"] = {"requests": rate, "per_seconds": 60}
    if dp_budget is not None:
        policy["roles"]["overall-researcher"]["dp"]["budget"] = dp_budget
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "genovault.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return folder


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Served:
    home: Path
    vault: Any  # EmbeddedVault
    root_token: str = field(repr=False)
    api_port: int
    env: dict[str, str] = field(repr=False)
    tokens: dict[str, str] = field(repr=False)
    proxy: SlowProxy | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def vault_addr(self) -> str:
        return self.vault.addr  # type: ignore[no-any-return]

    @property
    def audit_path(self) -> Path:
        return self.home / "audit" / "audit.jsonl"

    @property
    def ledger_path(self) -> Path:
        return self.home / "privacy" / "ledger.db"

    def root(self) -> hvac.Client:
        return hvac.Client(url=self.vault_addr, token=self.root_token, timeout=10)

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    # -- the API process --------------------------------------------------------------------
    def start_api(self, timeout: float = 90.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the API already runs"
        self.log_path = self.home / f"api-{int(time.time() * 1000)}.log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vault.cli", "serve", "--port", str(self.api_port)],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until /readyz answers 200 (raises if the process exits or time runs out)."""
        t0 = time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the API exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the API was not ready within {timeout} s:\n"
                                   + self.log_tail())
            time.sleep(0.1)

    def kill_api(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def api_rss_kb(self) -> int:
        """Resident set size of the API process (kB, from /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    # -- Vault faults -----------------------------------------------------------------------
    def seal(self) -> None:
        self.root().sys.seal()

    def unseal(self) -> None:
        self.vault.up()  # running: only unseals

    def restart_vault(self) -> None:
        """Stop the bao server (SIGTERM) and start it again from its storage, unsealed."""
        self.vault.down()
        self.vault.up()

    # -- what the checks read ---------------------------------------------------------------
    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]

    def verify_audit(self) -> Any:
        """``vault.audit.verify.verify`` of the log against the anchor in Vault (what
        ``genovault audit verify`` does)."""
        from vault.audit.verify import verify
        from vault.keys.anchor import VaultKvAnchor

        return verify(self.audit_path, VaultKvAnchor(self.root()))

    def ledger_charges(self) -> dict[str, float]:
        """principal -> ε the ledger holds (all periods)."""
        if not self.ledger_path.exists():
            return {}
        con = sqlite3.connect(self.ledger_path)
        try:
            return {p: float(e) for p, e in con.execute(
                "SELECT principal, SUM(epsilon) FROM charges GROUP BY principal")}
        finally:
            con.close()

    def ledger_kept(self) -> dict[str, tuple[str, float]]:
        """query id -> (principal, ε) of the charges the ledger kept although their answer
        was withheld: a parallel answer had already reused (released) their cells (table
        ``reused``; vault.privacy.ledger.Ledger.refund)."""
        if not self.ledger_path.exists():
            return {}
        con = sqlite3.connect(self.ledger_path)
        try:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'reused'").fetchone():
                return {}
            return {q: (p, float(e)) for q, p, e in con.execute(
                "SELECT c.query_id, c.principal, SUM(c.epsilon) FROM charges c JOIN reused r "
                "ON r.query_id = c.query_id GROUP BY c.query_id, c.principal")}
        finally:
            con.close()

    def ledger_by_query(self) -> dict[str, float]:
        """query id -> ε the ledger charged for it."""
        if not self.ledger_path.exists():
            return {}
        con = sqlite3.connect(self.ledger_path)
        try:
            return {q: float(e) for q, e in con.execute(
                "SELECT query_id, SUM(epsilon) FROM charges GROUP BY query_id")}
        finally:
            con.close()


def audited_charges(records: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """(principal -> ε, query id -> ε) that the audit records say were charged: the
    ``epsilon_spent`` of an answer's disclosure summary, or of a refusal's ``dp`` section."""
    by_principal: dict[str, float] = defaultdict(float)
    by_query: dict[str, float] = {}
    for rec in records:
        result = rec.get("result") or {}
        spent = None
        for part in ("disclosure", "dp"):
            section = result.get(part) or {}
            if section.get("epsilon_spent") is not None:
                spent = float(section["epsilon_spent"])
        if spent:
            p = rec.get("principal") or {}
            by_principal[p.get("entity_id") or p.get("display_name") or ""] += spent
            by_query[rec["query_id"]] = spent
    return dict(by_principal), by_query


def ledger_matches_audit(s: Served, tol: float = 1e-6) -> tuple[bool, str]:
    """Every charge of the ledger is in the audit trail with the same ε, and the reverse —
    but for a charge kept for a withheld answer whose cells a parallel answer had already
    released (docs/privacy.md, the ledger): it has no audit record by design."""
    principals, queries = audited_charges(s.audit_records())
    ledger_p, ledger_q = s.ledger_charges(), s.ledger_by_query()
    for q, (p, eps) in s.ledger_kept().items():
        if q not in queries:
            ledger_q.pop(q, None)
            ledger_p[p] = ledger_p.get(p, 0.0) - eps
    problems = []
    for q in set(queries) | set(ledger_q):
        a, b = queries.get(q, 0.0), ledger_q.get(q, 0.0)
        if abs(a - b) > tol:
            problems.append(f"query {q}: audited ε {a}, ledger ε {b}")
    for p in set(principals) | set(ledger_p):
        a, b = principals.get(p, 0.0), ledger_p.get(p, 0.0)
        if abs(a - b) > tol:
            problems.append(f"principal {p}: audited ε {a:.6f}, ledger ε {b:.6f}")
    return not problems, "; ".join(problems[:10])


def query_ids_of(resp: httpx.Response) -> list[str]:
    """Every audit query id an answer names: its body's ``query_id``, a Beacon document's
    ``info.queryIds``, or the ``X-Query-Id`` header (Arrow answers)."""
    ids: list[str] = []
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict):
            if isinstance(body.get("query_id"), str):
                ids.append(body["query_id"])
            for key in ("info", "meta"):
                info = body.get(key)
                if isinstance(info, dict):
                    ids.extend(q for q in info.get("queryIds") or [] if isinstance(q, str))
    if not ids and resp.headers.get("x-query-id"):
        ids.append(resp.headers["x-query-id"])
    return list(dict.fromkeys(ids))


def count_ids(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["query_id"] for r in records)


@contextlib.contextmanager
def served(tmp: Path, *, proxy: bool = False, dp_budget: float | None = None,
           rate: int = 1_000_000, cache_mb: int = 512, vault_timeout_s: float | None = None,
           start: bool = True) -> Iterator[Served]:
    """A served GenoVault (see the module docstring); everything stopped at exit.
    ``vault_timeout_s``: the API's ``GENOVAULT_VAULT_TIMEOUT`` (default: the settings')."""
    from vault.ingest.pipeline import IngestOptions, ingest
    from vault.keys import auth as vauth
    from vault.keys import client as vclient
    from vault.keys.embedded import EmbeddedVault, read_embedded_credentials
    from vault.keys.login import userpass_login
    from vault.store.dataset import Store

    home = tmp / "home"
    home.mkdir(parents=True)
    ev = EmbeddedVault(home, free_port_pair())
    sp: SlowProxy | None = None
    s: Served | None = None
    try:
        ev.up()
        addr, root_token = read_embedded_credentials(home)
        root = hvac.Client(url=addr, token=root_token, timeout=10)
        for user, policies in USERS.items():
            vauth.create_user(root, user, PASSWORD, policies)
        rid, sid = vauth.approle_credentials(root, "ingest")
        pipeline = vclient.client_for(addr, vauth.approle_login(addr, rid, sid))
        ingest(DEMO / "demo_cohort.vcf.gz", "demo", client=pipeline, store=Store(home / "store"),
               sample_sheet=DEMO / "demo_cohort_samples.tsv",
               options=IngestOptions(progress=False))
        pipeline.auth.token.revoke_self()
        role_id, secret_id = vauth.approle_credentials(root, "service")
        # the settings want a VAULT_TOKEN with VAULT_ADDR; the API uses its AppRole identity
        filler = root.auth.token.create(policies=["default"], ttl="24h")["auth"]["client_token"]
        if proxy:
            sp = SlowProxy(ev.port)
            sp.start()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAULT_", "BAO_", "GENOVAULT_"))}
        api_port = free_port()
        env.update({
            "GENOVAULT_HOME": str(home), "GENOVAULT_NO_PROGRESS": "1",
            "VAULT_ADDR": sp.addr if sp else addr, "VAULT_TOKEN": filler,
            "GENOVAULT_SERVICE_ROLE_ID": role_id, "GENOVAULT_SERVICE_SECRET_ID": secret_id,
            "GENOVAULT_POLICY_DIR": str(write_policy(home / "policy", rate, dp_budget)),
            "GENOVAULT_API_PORT": str(api_port), "GENOVAULT_CACHE_MB": str(cache_mb),
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep),
        })
        if vault_timeout_s is not None:
            env["GENOVAULT_VAULT_TIMEOUT"] = str(vault_timeout_s)
        tokens = {u: userpass_login(addr, u, PASSWORD) for u in USERS}
        tokens["wrong"] = "s." + "x" * 24  # well-formed, never issued
        s = Served(home=home, vault=ev, root_token=root_token, api_port=api_port, env=env,
                   tokens=tokens, proxy=sp)
        if start:
            s.start_api()
        yield s
    finally:
        if s is not None:
            s.kill_api(signal.SIGTERM)
        if sp is not None:
            sp.stop()
        ev.down()
