"""Membership-inference attacks vs the protections: power at 5 % FPR, AUC, utility cost.

    python benchmarks/privacy.py                      # in-process table + HTTP subset (~30 min)
    python benchmarks/privacy.py --http-people 0      # in-process table only (~12 min)
    python benchmarks/privacy.py --http-only          # HTTP subset only

**Rows** (one policy file each in benchmarks/privacy_policies/, the same settings here):

* ``none``: controlled tier, exact counts, k = 5 (the smallest k the policy loader accepts),
  no rare-variant rule;
* ``suppression``: controlled tier, k = 11, rare variants (AC 1..10) suppressed;
* ``noise``: registered tier, discrete Laplace noise at ε = 0.25 per variant (scale 4), a
  budget too large to matter, k = 5, no rare rule;
* ``budget``: registered tier with ε = 1000 per variant (noise scale 0.001: practically
  exact) and a budget of 400 variants per principal, k = 5, no rare rule;
* ``default``: the demo's registered tier (researcher-b in policies/access/genovault.yaml):
  ε 0.25 per variant, budget 100 (400 variants) for frequencies, k = 11 on the noisy
  counts, rare rule; presence under the per-member information budget (``dp.presence``:
  B = 0.35 nats per member and principal, one discrete Laplace at scale 4 on the number of
  carriers, threshold k + ⌈2 sd⌉ = 23; vault.privacy.presence, the very code the API runs,
  with one in-memory state per principal in place of the ledger's tables).

and ``exact`` (calibration only, in-process: k = 1, which no policy may set).

**Attacks** (benchmarks/privacy_sim.py): the Shringarpure-Bustamante LRT over presence
answers of the target's het sites in random order (``sb``), the same LRT over the rarest
het sites first (``optimal``, Raisaro et al. 2017), an LD-aware variant (``ld``: each
queried tag's answer is also used for its unqueried LD partners, von Thenen et al. 2019),
and the Sankararaman LR over allele frequencies of random sites (``homer``); and ``aware`` (not
from the papers): the ``sb`` answers read knowing the public presence threshold and noise
scale (benchmarks.privacy_sim.aware_statistic). Each
(target, attack) is one fresh principal with a full budget (the attacker's best case);
the Homer attacker is one principal per row. An attacker that gets 429 budget_exhausted
stops; the statistic uses the answers it got (``*_answered_*`` = queries answered).

**Utility**: RMSE of AF for AF >= 5 % (all stored common sites, no budget), and the share
of truthful existence answers over a 2,000-query patient-lookup workload (a non-member's
het sites in random order; truth = some member carries the allele); for budgeted rows the
answers stop at the budget: ``exists_truthful`` is over the answered queries,
``exists_truthful_all`` counts every refused query as not truthful.

**Budget margin** (goal: the budget stops an attacker at least 2 queries before any attack
reaches 5 % FPR power): ``queries_to_power_0.10`` is the fewest queries after which an
attack's power at 5 % FPR exceeds 0.10 under the default mechanism *without* its budgets
(no ε budget, presence with the same noise and threshold but no member budget); for the
rare-allele attacks (optimal, ld) it is read from their power curves over every member vs
every non-member, averaged over three runs (``rare_power_curves``; grid every 10 up to
100, then 120, 150, 200, 300, 400), for homer from its power curve over every member vs
every non-member averaged over five runs (``homer_power_curve``; 100 … 5,000 AFs), for sb
and aware from one run of ``--people`` (grid up to 5,000). The stop is the ε budget's
400 variants for the frequency attack and, for the presence attacks, the most answers any
attacked member took part in before the member budget excluded it
(``*_member_answers_max``); ``budget_margin`` = the smallest difference.

With the member budget, every presence query is answered (no 429), so the workload's
``exists_truthful_all`` counts all 2,000 queries; ``*_member_excluded`` is the share of
attacked members their attacker's answers had excluded by the end.

**Where the numbers come from.** The main table is computed in-process: the vault's own
mechanism (vault.privacy.dp.CellNoise — OpenDP's discrete Laplace —, the presence threshold
of vault.privacy.dp.DPSession, vault.privacy.disclosure.small_cells, the rare rule) applied
to the members' exact counts, for ``--people`` members and as many non-members. The
``http`` section (benchmarks/privacy_api.py) runs the same attacks through the real API:
real OpenBao, the members ingested through vault.ingest.pipeline with an ingest-role token,
uvicorn on loopback, one userpass principal per attacker, GET /presence for existence and
POST /frequency (Arrow) for AFs — for ``--http-people`` members and as many non-members,
up to ``--http-queries`` presence queries per attack; and it checks that every HTTP answer
equals the in-process mechanism applied to the same cell (exact counts for controlled rows;
the noisy counts the ledger released to that principal for registered rows), and that the
API's noise has the in-process noise's spread.

Ends with one JSON line: {"bench": "privacy", "sb_power_unprotected", "sb_power_default",
"homer_auc_default", "af_rmse_default", …, "table": …, "goals": …, "http": …};
``sb_power_unprotected`` is the ``none`` row (the least protection a policy can give),
``sb_power_exact`` the calibration's exact answers, both after 5,000 queries.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import privacy_sim as ps

QUERIES = (5, 1000, 2000, 5000)
#: the four published attacks; "aware" (the SB answers read with the mechanism's public
#: threshold and noise scale) is ours, reported beside them
ATTACKS = ("sb", "optimal", "ld", "homer")
ALL_ATTACKS = (*ATTACKS, "aware")
WORKLOAD = 2000


@dataclass(frozen=True)
class Row:
    """One protection row: the obligations its policy file gives."""

    name: str
    tier: str  # controlled | registered
    k: int
    rare_max_ac: int | None = None
    eps: float | None = None
    budget: float | None = None
    #: presence paid from a per-member information budget (policy ``dp.presence``):
    #: (member budget B in nats, noise scale, what is counted: alleles | carriers); None:
    #: presence costs an ε cell
    presence: tuple[float, float, str] | None = None

    def presence_params(self) -> Any:
        from vault.privacy.presence import PresenceParams

        assert self.presence is not None
        b, s, count = self.presence
        return PresenceParams(b, s, count=count)

    @property
    def cap(self) -> int | None:
        """New variants a principal gets answered before 429 (None: no practical limit)."""
        return None if self.presence is not None else self.af_cap

    @property
    def af_cap(self) -> int | None:
        """New variants of frequency answers before 429 (None: no practical limit)."""
        if self.eps is None or self.budget is None:
            return None
        n = round(self.budget / self.eps)
        return n if n < 1_000_000 else None

    def threshold(self) -> int:
        """The AC a presence answer needs to be "true"."""
        if self.tier == "controlled":
            return self.k
        if self.presence is not None:
            return int(self.presence_params().threshold(self.k))
        from vault.privacy.dp import DPSession

        assert self.eps is not None
        return DPSession(None, "bench", self.eps, 1.0, 30).presence_threshold(self.k)  # type: ignore[arg-type]


ROWS: dict[str, Row] = {
    "none": Row("none", "controlled", 5),
    "suppression": Row("suppression", "controlled", 11, 10),
    "noise": Row("noise", "registered", 5, None, 0.25, 1e9),
    "budget": Row("budget", "registered", 5, None, 1000.0, 400_000.0),
    "default": Row("default", "registered", 11, 10, 0.25, 100.0, (0.35, 4.0, "carriers")),
}
EXACT = Row("exact", "controlled", 1)
#: the default mechanism without its budgets (for the budget margin): no ε budget, and
#: presence with the same noise and threshold but no member budget
DEFAULT_NO_BUDGET = Row("default_no_budget", "registered", 11, 10, 0.25, 1e9,
                        (math.inf, 4.0, "carriers"))


# -- the mechanism, as the API applies it --------------------------------------------------
def exact_counts(c: ps.Cohort) -> tuple[np.ndarray, np.ndarray]:
    """(S, 4) members' genotype counts of every simulated site, and which sites are stored
    (the members' VCF holds the sites some member carries)."""
    m = c.members
    counts = np.stack([(m == 0).sum(1), (m == 1).sum(1), (m == 2).sum(1),
                       np.zeros(m.shape[0], np.int64)], axis=1).astype(np.int64)
    return counts, counts[:, 1] + counts[:, 2] > 0


def release(counts: np.ndarray, row: Row) -> np.ndarray:
    """The counts the row releases: exact (controlled) or OpenDP-noised (registered)."""
    if row.tier == "controlled":
        return counts
    from vault.privacy.dp import CellNoise

    assert row.eps is not None
    return CellNoise(row.eps).sample(counts)


def decide(released: np.ndarray, stored: np.ndarray, row: Row,
           exact: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Presence (bool; null = False) and AF (nan = withheld) from released counts, by the
    rules of vault/query/advanced.presence and the frequency route (docs/privacy.md);
    ``exact``: the exact counts (registered tier: a variant rare in fact is not listed)."""
    from vault.privacy.disclosure import small_cells

    r = np.asarray(released, np.int64)
    ac = r[:, 1] + 2 * r[:, 2]
    an = 2 * r[:, :3].sum(1)
    if row.tier == "controlled":
        beacon = stored & (ac >= row.k) & ~small_cells(r, row.k, "alleles")
    else:  # a variant not stored is noised from zero counts like an absent one
        beacon = ac >= row.threshold()
    withheld = ~stored | small_cells(r, row.k, "alleles") | (an == 0)
    if row.tier != "controlled":  # a noisy AC or REF count of 0 is not listed either
        withheld |= (ac == 0) | (an - ac == 0)
        if exact is not None:
            withheld |= small_cells(np.asarray(exact, np.int64), row.k, "alleles")
    if row.rare_max_ac:
        withheld |= (ac > 0) & (ac <= row.rare_max_ac)
    af = np.where(withheld, np.nan, ac / np.maximum(an, 1))
    return {"beacon": beacon, "af": af}


class InProcess:
    """Answers of the mechanism to one attacker per key (a fresh principal: the row's cap)."""

    def __init__(self, c: ps.Cohort, row: Row) -> None:
        self.row = row
        counts, self.stored = exact_counts(c)
        self.released = release(counts, row)
        a = decide(self.released, self.stored, row, counts)
        self._beacon, self._af = a["beacon"], a["af"]
        self.true_af = counts[:, 1] / c.n / 2 + counts[:, 2] / c.n
        self.members = c.members
        #: rows with ``presence``: one vault.privacy.presence.MemberState per principal
        self.states: dict[Hashable, Any] = {}
        self._pool = np.zeros(0, np.int64)
        self._at = 0

    def _cut(self, sites: np.ndarray, cap: int | None) -> np.ndarray:
        return sites[:cap] if cap is not None else sites

    def _draw(self) -> int:
        """One noise value of the presence mechanism (OpenDP, drawn in batches)."""
        if self._at >= self._pool.size:
            from vault.privacy.presence import PresenceNoise

            self._pool = PresenceNoise(self.row.presence_params().scale).draws(1 << 16)
            self._at = 0
        self._at += 1
        return int(self._pool[self._at - 1])

    def state(self, key: Hashable) -> Any:
        """The principal ``key``'s member budgets (rows with ``presence``)."""
        from vault.privacy.presence import MemberState

        if key not in self.states:
            p = self.row.presence_params()
            self.states[key] = MemberState(self.members.shape[1], p, p.threshold(self.row.k))
        return self.states[key]

    def beacon(self, key: Hashable, sites: np.ndarray) -> np.ndarray:
        sites = np.asarray(sites, np.int64)
        if self.row.presence is None:
            return self._beacon[self._cut(sites, self.row.cap)]
        st = self.state(key)
        out = np.zeros(sites.size, bool)
        m = self.members
        for j, s in enumerate(sites.tolist()):
            row = m[s]
            idx = np.flatnonzero(row)
            out[j] = st.ask(s, idx, row[idx], self._draw)
        return out

    def excluded_after(self, key: Hashable, member: int) -> int | None:
        """How many new presence answers principal ``key`` had got when ``member`` was
        excluded from its answers (None: never)."""
        st = self.states.get(key)
        return None if st is None else st.excluded_at.get(member)

    def af(self, key: Hashable, sites: np.ndarray) -> np.ndarray:
        return self._af[self._cut(np.asarray(sites, np.int64), self.row.af_cap)]


Oracle = Any  # InProcess or benchmarks.privacy_api.HttpOracle: .beacon(key, sites), .af(...)


# -- the attacks over an oracle ------------------------------------------------------------
def attack_plan(c: ps.Cohort, person: int, f: np.ndarray, max_q: int,
                rng: np.random.Generator) -> dict[str, Any]:
    """What one attacker asks about ``person``: SB's random het sites, the rarest het sites,
    and the LD attack's tags (with their groups)."""
    h = ps.het_sites(c, person)
    rare = h[np.argsort(f[h], kind="stable")]
    groups = ps.ld_groups(c.reference, c.segment, rare[: 2 * min(max_q, 1000)], window=10)
    return {"sb": rng.permutation(h)[:max_q], "optimal": rare[: min(max_q, 1000)],
            "ld": np.array([g[0] for g in groups[: min(max_q, 1000)]], np.int64),
            "ld_groups": groups}


def _statistic(name: str, answers: np.ndarray, plan: dict[str, Any], sites: np.ndarray,
               f: np.ndarray, n: int) -> float:
    """The SB LRT of one attack's first answers; for ``ld`` each tag's answer also stands for
    its unqueried LD partners (its group)."""
    if name == "ld":
        groups = plan["ld_groups"][: answers.size]
        rep = np.repeat(answers, [len(g) for g in groups]) if groups else answers
        fr = f[np.array([s for g in groups for s in g], np.int64)] if groups else f[:0]
        return ps.sb_statistic(rep, fr, n)
    return ps.sb_statistic(answers, f[sites[: answers.size]], n)


def person_stats(c: ps.Cohort, oracle: Oracle, person: int, f: np.ndarray,
                 queries: Sequence[int], rng: np.random.Generator) -> dict[str, float]:
    """SB, optimal and LD statistics of one target after each number of queries."""
    plan = attack_plan(c, person, f, max(queries), rng)
    out: dict[str, float] = {}
    for name in ("sb", "optimal", "ld"):
        sites = plan[name]
        ans = oracle.beacon((person, name), sites)
        if person < c.n and getattr(oracle.row, "presence", None) is not None and \
                hasattr(oracle, "excluded_after"):
            at = oracle.excluded_after((person, name), person)
            # answers the target member took part in (all of them when never excluded)
            out[f"{name}_member_answers"] = float(ans.size if at is None else at)
            out[f"{name}_member_excluded"] = float(at is not None)
        for q in queries:
            if name != "sb" and q > 1000:
                continue
            a = ans[:q]
            out[f"{name}_answered_{q}"] = a.size
            out[f"{name}_{q}"] = _statistic(name, a, plan, sites, f, c.n)
            if name == "sb":  # the same answers, read knowing the mechanism
                row = oracle.row
                sd = 0.0 if row.tier == "controlled" else (
                    row.presence_params().sd() if row.presence is not None else _ac_sd(row))
                count = row.presence[2] if row.presence is not None else "alleles"
                out[f"aware_{q}"] = ps.aware_statistic(a, f[sites[: a.size]], c.n,
                                                       row.threshold(), sd, count)
    return out


def _ac_sd(row: Row) -> float:
    from vault.privacy.dp import CellNoise

    assert row.eps is not None
    return CellNoise(row.eps).ac_sd()


def evaluate(c: ps.Cohort, oracle: Oracle, people: Sequence[int] | int = 200,
             queries: Sequence[int] = QUERIES, seed: int = 1,
             utility: bool = True, workload_people: int = 50) -> dict[str, float]:
    """Power at 5 % FPR and AUC of every attack after each number of queries, for members
    ``people`` (indices) and the non-members at the same offsets; plus utility."""
    rng = np.random.default_rng(seed)
    f = c.ref_af()
    n = c.n
    idx = list(range(people)) if isinstance(people, int) else list(people)
    per: dict[str, dict[str, list[float]]] = {"m": {}, "nm": {}}
    for grp, off in (("m", 0), ("nm", n)):
        for p in idx:
            for key, v in person_stats(c, oracle, off + p, f, queries, rng).items():
                per[grp].setdefault(key, []).append(v)
    out: dict[str, float] = {}
    for key in per["m"]:
        if key.endswith(("_member_answers", "_member_excluded")):  # members only
            v = np.array(per["m"][key])
            if key.endswith("_excluded"):
                out[key] = float(v.mean())
            else:
                out[f"{key}_median"] = float(np.median(v))
                out[f"{key}_max"] = float(v.max())
            continue
        m, nm = np.array(per["m"][key]), np.array(per["nm"][key])
        name, q = key.rsplit("_", 1)
        if name.endswith("_answered"):
            out[f"{name}_{q}"] = float(np.mean(np.concatenate([m, nm])))
            continue
        out[f"{name}_power_{q}"] = ps.power_at(m, nm, larger_is_member=False)
        out[f"{name}_auc_{q}"] = ps.auc(m, nm, larger_is_member=False)
    out.update(homer(c, oracle, idx, queries, rng))
    if utility:
        out.update(utility_of(c, oracle, workload_people, rng))
    return out


def homer(c: ps.Cohort, oracle: Oracle, people: Sequence[int], queries: Sequence[int],
          rng: np.random.Generator) -> dict[str, float]:
    """The Sankararaman LR of members ``people`` vs the non-members at the same offsets:
    one principal asks the AFs of max(queries) random sites (withheld ones are skipped)."""
    n, f = c.n, c.ref_af()
    sites = rng.choice(c.pos.size, min(max(queries), c.pos.size), replace=False)
    af = oracle.af(("homer",), sites)
    dos_m = c.dosage[:, list(people)]
    dos_nm = c.dosage[:, [n + p for p in people]]
    out: dict[str, float] = {}
    for q in queries:
        got = af[:q]
        s = sites[: got.size]
        keep = ~np.isnan(got)
        s, got = s[keep], got[keep]
        sm = ps.lr_statistics(dos_m[s], got, f[s])
        snm = ps.lr_statistics(dos_nm[s], got, f[s])
        out[f"homer_answered_{q}"] = float(min(q, af.size))
        out[f"homer_power_{q}"] = ps.power_at(sm, snm)
        out[f"homer_auc_{q}"] = ps.auc(sm, snm)
    # AF error over the common sites among the answers (both oracles)
    true_af = c.member_ac()[sites[: af.size]] / (2.0 * n)
    com = (true_af >= 0.05) & ~np.isnan(af)
    out["af_rmse_asked"] = float(np.sqrt(np.mean((af[com] - true_af[com]) ** 2))) \
        if com.any() else float("nan")
    return out


def utility_of(c: ps.Cohort, oracle: Oracle, people: int,
               rng: np.random.Generator) -> dict[str, float]:
    """AF RMSE for AF >= 5 % (every stored common site) and existence truthfulness over a
    2,000-query lookup workload of ``people`` honest researchers."""
    out: dict[str, float] = {}
    if isinstance(oracle, InProcess):
        common = (oracle.true_af >= 0.05) & oracle.stored
        got = oracle._af[common]
        ok = ~np.isnan(got)
        out["af_rmse"] = float(np.sqrt(np.mean((got[ok] - oracle.true_af[common][ok]) ** 2)))
        out["af_common_withheld"] = float(1 - ok.mean())
    truth_ac = c.member_ac()
    tr, tr_all, answered = [], [], []
    for p in range(people):
        h = np.resize(rng.permutation(ps.het_sites(c, c.n + p)), WORKLOAD)
        # repeats (only after every het site was asked) are free: ask the distinct ones
        _, first = np.unique(h, return_index=True)
        distinct = h[np.sort(first)]
        ans = oracle.beacon(("workload", p), distinct)
        got = dict(zip(distinct[: ans.size].tolist(), ans.tolist(), strict=True))
        ok = np.array([got[s] == (truth_ac[s] > 0) for s in h if s in got], bool)
        tr.append(ok.mean() if ok.size else float("nan"))
        tr_all.append(ok.sum() / WORKLOAD)
        answered.append(ok.size / WORKLOAD)
    states = getattr(oracle, "states", {})
    gone = [states[("workload", p)].excluded.mean() for p in range(people)
            if ("workload", p) in states]
    if gone:  # the member budget: members excluded for each honest researcher, at the end
        out["workload_members_excluded_mean"] = float(np.mean(gone))
        out["workload_members_excluded_max"] = float(np.max(gone))
    out["exists_truthful"] = float(np.nanmean(tr))
    out["exists_truthful_all"] = float(np.mean(tr_all))
    out["exists_answered_fraction"] = float(np.mean(answered))
    return out


#: queries at which the rare-allele attacks' power curves are read (budget margin)
RARE_GRID = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200, 300, 400)


def rare_power_curves(c: ps.Cohort, row: Row, reps: int = 3,
                      grid: Sequence[int] = RARE_GRID, seed: int = 100
                      ) -> dict[str, dict[int, float]]:
    """Power at 5 % FPR of the rarest-first (``optimal``) and LD attacks after each number
    of queries, on **every** member vs every non-member of the cohort, averaged over
    ``reps`` runs (fresh noise and a fresh principal per target each run). One run of 500
    vs 500 estimates a power near 0.10 with a standard error of ~0.013 and the curves rise
    slowly there, so the first grid point of a single run above 0.10 wanders (30 … 150
    queries for the same mechanism); three runs of 1,000 vs 1,000 bring it to ~0.005."""
    f = c.ref_af()
    top = max(grid)
    acc = {a: {q: 0.0 for q in grid} for a in ("optimal", "ld")}
    for r in range(reps):
        oracle = InProcess(c, row)
        rng = np.random.default_rng(seed + r)
        stats: dict[str, dict[str, dict[int, list[float]]]] = {
            a: {"m": {q: [] for q in grid}, "nm": {q: [] for q in grid}} for a in acc}
        for grp, off in (("m", 0), ("nm", c.n)):
            for p in range(c.n):
                plan = attack_plan(c, off + p, f, top, rng)
                for name in acc:
                    sites = plan[name][:top]
                    ans = oracle.beacon((off + p, name), sites)
                    for q in grid:
                        stats[name][grp][q].append(
                            _statistic(name, ans[:q], plan, sites, f, c.n))
        for name in acc:
            for q in grid:
                acc[name][q] += ps.power_at(np.array(stats[name]["m"][q]),
                                            np.array(stats[name]["nm"][q]),
                                            larger_is_member=False) / reps
    return {a: {q: round(v, 4) for q, v in curve.items()} for a, curve in acc.items()}


#: numbers of AFs at which the Homer attack's power curve is read (budget margin)
HOMER_GRID = (100, 200, 300, 400, 500, 600, 800, 1000, 2000, 5000)


def homer_power_curve(c: ps.Cohort, row: Row, reps: int = 5,
                      grid: Sequence[int] = HOMER_GRID, seed: int = 200) -> dict[int, float]:
    """Power at 5 % FPR of the Homer attack after each number of AFs, on every member vs
    every non-member, averaged over ``reps`` runs (fresh noise, fresh random sites). A
    single 500-vs-500 run reads a power of ~0.07 at 400 AFs as anything from 0.05 to 0.12
    (it put the unbudgeted crossing of 0.10 at 400 in one of six runs)."""
    acc = {q: 0.0 for q in grid}
    for r in range(reps):
        h = homer(c, InProcess(c, row), range(c.n), grid, np.random.default_rng(seed + r))
        for q in grid:
            acc[q] += h[f"homer_power_{q}"] / reps
    return {q: round(v, 4) for q, v in acc.items()}


def queries_to_power(c: ps.Cohort, row: Row, people: int, level: float = 0.10,
                     grid: Sequence[int] = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120,
                                            150, 200, 400, 600, 1000, 2000, 5000),
                     seed: int = 2, reps: int = 3) -> dict[str, Any]:
    """Fewest queries (on ``grid``) after which each attack's power at 5 % FPR > level:
    sb and aware from one run of ``people`` vs ``people``; optimal and ld from the mean
    curves of :func:`rare_power_curves`, homer from :func:`homer_power_curve` (None: not
    reached on the grid)."""
    def first_above(curve: dict[int, float]) -> int | None:
        return min((q for q, v in curve.items() if v > level), default=None)

    r = evaluate(c, InProcess(c, row), people, grid, seed=seed, utility=False)
    out: dict[str, Any] = {a: first_above({q: r[f"{a}_power_{q}"] for q in grid
                                           if f"{a}_power_{q}" in r}) for a in ALL_ATTACKS}
    curves = rare_power_curves(c, row, reps)
    curves["homer"] = homer_power_curve(c, row)
    out.update({a: first_above(curve) for a, curve in curves.items()})
    out["curves"] = curves
    return out


def budget_margin(need: dict[str, int | None], d: dict[str, float], row: Row
                  ) -> dict[str, Any]:
    """Queries an attack needs (without the budgets) to exceed power 0.10, minus the
    queries after which the budgets stopped it: the ε budget's 400 variants for the
    frequency attack (and for presence without ``dp.presence``); with the member budget, the
    most answers any attacked member took part in before it was excluded (an attack whose
    target was never excluded counts all its answers)."""
    stops: dict[str, float | None] = {a: row.cap for a in ATTACKS}
    stops["homer"] = row.af_cap
    if row.presence is not None:
        for a in ("sb", "optimal", "ld"):
            stops[a] = d.get(f"{a}_member_answers_max")
    margins = {a: need[a] - stops[a] for a in ATTACKS  # type: ignore[operator]
               if need.get(a) is not None and stops.get(a) is not None}
    return {"queries_to_power_0.10": need, "stops": stops, "margins": margins,
            "budget_margin": min(margins.values()) if margins else None,
            "no_attack_reached_0.10_without_budget": not margins}


# -- goals ----------------------------------------------------------------------------------
def goals(table: dict[str, dict[str, float]], margin: dict[str, Any],
          calib: dict[str, float]) -> dict[str, Any]:
    d = table["default"]
    g: dict[str, Any] = {
        "calibration_sb_0.95_within_8000": calib.get("sb_queries_to_0.95") is not None,
        "calibration_sb_queries_to_0.95": calib.get("sb_queries_to_0.95"),
        "calibration_optimal_0.95_within_5": calib["optimal_power_5"] >= 0.95,
    }
    for a in ATTACKS:
        g[f"{a}_power_1000_le_0.10"] = d[f"{a}_power_1000"] <= 0.10
    g["sb_power_5000_le_0.10"] = d["sb_power_5000"] <= 0.10
    g["extra_aware_power_1000_le_0.10"] = d["aware_power_1000"] <= 0.10
    g["extra_aware_power_5000_le_0.10"] = d["aware_power_5000"] <= 0.10
    g["homer_auc_le_0.60"] = d["homer_auc_5000"] <= 0.60 and d["homer_auc_1000"] <= 0.60
    g["af_rmse_le_0.01"] = d["af_rmse"] <= 0.01
    g["exists_truthful_answered_ge_0.94"] = d["exists_truthful"] >= 0.94
    g["exists_truthful_all_2000_ge_0.94"] = d["exists_truthful_all"] >= 0.94
    g["budget_margin_ge_2"] = margin["budget_margin"] >= 2 if margin["budget_margin"] is \
        not None else margin["no_attack_reached_0.10_without_budget"]
    for q in (1000, 2000, 5000):
        g[f"every_attack_power_{q}_le_0.10"] = all(
            d[f"{a}_power_{q}"] <= 0.10 for a in (*ATTACKS, "aware")
            if f"{a}_power_{q}" in d)
    return g


def calibration(c: ps.Cohort, people: int) -> dict[str, Any]:
    """Exact answers (k = 1): SB power over a query grid, and optimal after 5 queries."""
    grid = (1000, 2000, 3000, 4000, 5000, 6000, 8000)
    r = evaluate(c, InProcess(c, EXACT), people, grid, utility=False)
    curve = {q: r[f"sb_power_{q}"] for q in grid}
    reach = [q for q in grid if curve[q] >= 0.95]
    r5 = evaluate(c, InProcess(c, EXACT), people, (3, 5), utility=False)
    return {"sb_power": curve, "sb_queries_to_0.95": min(reach) if reach else None,
            "optimal_power_3": r5["optimal_power_3"], "optimal_power_5": r5["optimal_power_5"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--segment-bp", type=float, default=200_000)
    ap.add_argument("--people", type=int, default=500, help="attacked members (and as many "
                    "non-members) in the in-process table")
    ap.add_argument("--http-people", type=int, default=5, help="attacked members (and as "
                    "many non-members) through the HTTP API; 0 skips it")
    ap.add_argument("--http-queries", type=int, default=500,
                    help="presence queries per attack through HTTP (5 and this; above the "
                         "budget's 400, so budgeted attackers meet 429)")
    ap.add_argument("--http-rows", default="none,suppression,noise,budget,default")
    ap.add_argument("--http-only", action="store_true",
                    help="only the HTTP part (prints its JSON line)")
    args = ap.parse_args(argv)
    c = ps.simulate(args.members, args.segments, args.segment_bp,
                    cache=Path(__file__).resolve().parent / ".cache")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log(f"cohort: {c.n} members, {c.n} non-members, {c.n} reference, {c.pos.size} sites")
    if args.http_only:
        from benchmarks import privacy_api

        http = privacy_api.run(c, [ROWS[r] for r in args.http_rows.split(",")],
                               args.http_people, (5, args.http_queries), log=log)
        print_table(http["table"], "through the HTTP API")
        print(json.dumps({"bench": "privacy_http", "members": c.n, **http}, default=_json))
        return 0
    calib = calibration(c, args.people)
    log(f"calibration (exact answers): {json.dumps(calib)}")
    table: dict[str, dict[str, float]] = {}
    for name, row in ROWS.items():
        r = evaluate(c, InProcess(c, row), args.people)
        table[name] = {k: round(v, 4) for k, v in r.items()}
        log(f"{name}: {json.dumps(table[name])}")
    need = queries_to_power(c, DEFAULT_NO_BUDGET, args.people)
    margin = budget_margin(need, table["default"], ROWS["default"])
    log(f"budget margin: {json.dumps(margin)}")
    print_table(table)
    http: dict[str, Any] | None = None
    if args.http_people > 0:
        from benchmarks import privacy_api

        http = privacy_api.run(c, [ROWS[r] for r in args.http_rows.split(",")],
                               args.http_people, (5, args.http_queries), log=log)
        print_table(http["table"], "through the HTTP API")
    out = {"bench": "privacy", "members": c.n, "segments": args.segments,
           "sites": int(c.pos.size), "people": args.people,
           "sb_power_unprotected": table["none"]["sb_power_5000"],
           "sb_power_exact": calib["sb_power"][5000],
           "optimal_power_unprotected_5": table["none"]["optimal_power_5"],
           "sb_power_default": table["default"]["sb_power_5000"],
           "homer_auc_default": table["default"]["homer_auc_5000"],
           "af_rmse_default": table["default"]["af_rmse"],
           "exists_truthful_default": table["default"]["exists_truthful"],
           "calibration": calib, "budget": margin,
           "goals": goals(table, margin, calib), "table": table, "http": http}
    print(json.dumps(out, default=_json))
    return 0


def _json(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def print_table(table: dict[str, dict[str, float]], title: str = "in-process") -> None:
    """A Markdown table of power at 5 % FPR / AUC, for every (attack, queries) measured."""
    first = next(iter(table.values()))
    cols = [(a, int(k.rsplit("_", 1)[1])) for a in ALL_ATTACKS for k in first
            if k.startswith(f"{a}_power_")]
    head = " | ".join(f"{a} {q}" for a, q in cols)
    print(f"\n{title}: power at 5 % FPR / AUC\n| row | {head} | AF RMSE | exists truthful "
          "(answered) | exists truthful (all 2,000) |")
    print("|---" * (len(cols) + 4) + "|")
    for name, r in table.items():
        cells = []
        for a, q in cols:
            p, u = r.get(f"{a}_power_{q}"), r.get(f"{a}_auc_{q}")
            cells.append("-" if p is None or u is None else f"{p:.3f} / {u:.3f}")
        rm = r.get("af_rmse", r.get("af_rmse_asked"))
        ex = r.get("exists_truthful")
        ex_all = r.get("exists_truthful_all")
        print(f"| {name} | " + " | ".join(cells)
              + f" | {'-' if rm is None or math.isnan(rm) else f'{rm:.4f}'}"
              + f" | {'-' if ex is None or math.isnan(ex) else f'{ex:.3f}'}"
              + f" | {'-' if ex_all is None or math.isnan(ex_all) else f'{ex_all:.3f}'} |")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
