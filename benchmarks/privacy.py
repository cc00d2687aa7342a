"""Membership-inference attacks vs the protections: power at 5 % FPR, AUC, utility cost.

    python benchmarks/privacy.py [--members 1000] [--segments 100] [--people 200]

Rows: none (exact answers), suppression alone (k = 11, rare-variant rule), noise alone
(the registered tier's discrete Laplace at ε = 0.25 per variant, no budget), budget alone
(exact answers, but only budget / ε = 400 new variants per period), and the defaults
(noise + suppression on noisy counts + presence margin + budget). Attacks: SB LRT over
random het sites, the rarest-first "optimal" attack, an LD-aware variant, and the
Sankararaman LR ("homer") over allele frequencies. Utility: RMSE of AF for AF >= 5 %,
truthful existence answers over a 2,000-query patient-lookup workload (a non-member's het
sites in random order; truth = the allele is carried by some member).

LIMITATION: the answers are computed with the vault's own mechanism (vault.privacy.dp:
OpenDP noise, the presence threshold, the ledger's budget) on the simulated counts,
in-process — not through the HTTP API (tests/api/test_dp_api.py covers the API path).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import privacy_sim as ps

EPS, BUDGET, K = 0.25, 100.0, 11


def answers(c: ps.Cohort, mode: str, seed: int = 3) -> dict[str, np.ndarray]:
    """Per site: beacon answer (bool), released AF (nan = withheld)."""
    from vault.privacy.dp import CellNoise, DPSession
    from vault.privacy.ledger import Ledger

    m = c.members
    counts = np.stack([(m == 0).sum(1), (m == 1).sum(1), (m == 2).sum(1),
                       np.zeros(m.shape[0], np.int64)], axis=1).astype(np.int64)
    noisy = counts
    threshold = 1
    if mode in ("noise", "default"):
        noise = CellNoise(EPS)
        noisy = noise.sample(counts)
        threshold = DPSession(Ledger.__new__(Ledger), "x", EPS, BUDGET, 30).presence_threshold(
            K) if mode == "default" else K
    ac = noisy[:, 1] + 2 * noisy[:, 2]
    an = 2 * noisy[:, :3].sum(1)
    af = np.where(an > 0, ac / np.maximum(an, 1), np.nan)
    if mode in ("none", "budget", "noise"):
        beacon = ac >= (1 if mode != "noise" else K)
    else:  # suppression / default: k on the (noisy) counts, null = no
        beacon = ac >= (K if mode == "suppression" else threshold)
        ref = 2 * noisy[:, 0] + noisy[:, 1]
        small = ((ac > 0) & (ac < K)) | ((ref > 0) & (ref < K))
        af = np.where(small, np.nan, af)
    return {"beacon": beacon, "af": af, "true_af": counts[:, 1] / c.n / 2
            + counts[:, 2] / c.n}


def evaluate(c: ps.Cohort, mode: str, queries: tuple[int, ...] = (5, 1000, 5000),
             people: int = 200, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    a = answers(c, mode, seed)
    f = c.ref_af()
    cap = int(BUDGET / EPS) if mode in ("budget", "default") else None
    out: dict[str, float] = {}
    n = c.n
    for q in queries:
        asked = min(q, cap) if cap else q
        for name in ("sb", "optimal", "ld") if q <= 1000 else ("sb", "optimal"):
            st = {}
            for grp, off in (("m", 0), ("nm", n)):
                vals = []
                for p in range(people):
                    h = ps.het_sites(c, off + p)
                    if name == "sb":
                        h = rng.permutation(h)[:asked]
                        vals.append(ps.sb_statistic(a["beacon"][h], f[h], n))
                    else:
                        h = h[np.argsort(f[h], kind="stable")]
                        if name == "optimal":
                            h = h[:asked]
                            vals.append(ps.sb_statistic(a["beacon"][h], f[h], n))
                        else:  # answers of LD partners inferred from the queried tag
                            groups = ps.ld_groups(c.reference, c.segment, h[: 2 * asked], window=10)
                            ans, fr = [], []
                            for g in groups[:asked]:
                                for s in g:
                                    ans.append(a["beacon"][g[0]])
                                    fr.append(f[s])
                            vals.append(ps.sb_statistic(np.array(ans, bool), np.array(fr), n))
                st[grp] = np.array(vals)
            out[f"{name}_power_{q}"] = ps.power_at(st["m"], st["nm"], larger_is_member=False)
            out[f"{name}_auc_{q}"] = ps.auc(st["m"], st["nm"], larger_is_member=False)
        # homer: q frequency lookups of random sites (AF withheld sites are skipped)
        idx = rng.choice(c.pos.size, min(asked, c.pos.size), replace=False)
        idx = idx[~np.isnan(a["af"][idx])]
        sm = [ps.lr_statistic(c.dosage[idx, p], a["af"][idx], f[idx]) for p in range(people)]
        snm = [ps.lr_statistic(c.dosage[idx, n + p], a["af"][idx], f[idx])
               for p in range(people)]
        out[f"homer_power_{q}"] = ps.power_at(np.array(sm), np.array(snm))
        out[f"homer_auc_{q}"] = ps.auc(np.array(sm), np.array(snm))
    common = (a["true_af"] >= 0.05) & ~np.isnan(a["af"])
    out["af_rmse"] = float(np.sqrt(np.mean((a["af"][common] - a["true_af"][common]) ** 2)))
    truth_ac = c.member_ac()
    tr, answered = [], []
    for p in range(min(people, 50)):
        h = rng.permutation(ps.het_sites(c, n + p))
        h = np.resize(h, 2000)  # a 2,000-query lookup workload (repeats are free)
        ok = a["beacon"][h] == (truth_ac[h] > 0)
        distinct = np.unique(h, return_index=True)[1]
        limit = np.sort(distinct)[cap] if cap and distinct.size > cap else h.size
        tr.append(ok[:limit].mean())
        answered.append(limit / h.size)
    out["exists_truthful"] = float(np.mean(tr))
    out["exists_answered_fraction"] = float(np.mean(answered))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--segment-bp", type=float, default=200_000)
    ap.add_argument("--people", type=int, default=200)
    args = ap.parse_args(argv)
    c = ps.simulate(args.members, args.segments, args.segment_bp,
                    cache=Path(__file__).resolve().parent / ".cache")
    table = {}
    for mode in ("none", "suppression", "noise", "budget", "default"):
        table[mode] = {k: round(v, 4) for k, v in evaluate(c, mode, people=args.people).items()}
        print(mode, json.dumps(table[mode]), flush=True)
    print(json.dumps({"bench": "privacy", "members": args.members, "segments": args.segments,
                      "sites": int(c.pos.size),
                      "sb_power_unprotected": table["none"]["sb_power_5000"],
                      "optimal_power_unprotected_5": table["none"]["optimal_power_5"],
                      "sb_power_default": table["default"]["sb_power_5000"],
                      "homer_auc_default": table["default"]["homer_auc_5000"],
                      "af_rmse_default": table["default"]["af_rmse"],
                      "exists_truthful_default": table["default"]["exists_truthful"],
                      "table": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
