"""Genome-like msprime cohorts and the membership-inference attacks of the literature.

Simulation (shared/notes/privacy-simulation.md): one population (Ne = 1e4, mutation and
recombination 1e-8), ``n_segments`` *unlinked* segments (separate msprime runs) placed one
after the other on contig "1" with 1 Mb gaps; 3 × n diploids split into members (in the
vault), non-members (same population) and a reference panel the attacker knows.

Attacks (all take answers the vault gave; they never see member genotypes):

* ``sb_statistic``: Shringarpure & Bustamante 2015 LRT over beacon answers, frequency-aware
  (D_N = (1 − f)^(2N), f from the reference panel, δ = 1e-6); small = "member".
* the "optimal" attack of Raisaro et al. 2017 is the same LRT over the rarest sites first;
* ``ld_inferred``: von Thenen et al. 2019 in spirit — answers of unqueried het sites in
  strong LD (reference r² ≥ 0.8) with a queried one are inferred, so fewer queries cover more;
* ``lr_statistic``: Sankararaman et al. 2009 likelihood ratio over allele frequencies
  (Homer et al. 2008 in its optimal form); large = "member".
"""

from __future__ import annotations

import gzip
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DELTA = 1e-6


@dataclass
class Cohort:
    pos: np.ndarray  # (S,) VCF positions on contig "1"
    segment: np.ndarray  # (S,) segment index of each site
    dosage: np.ndarray  # (S, 3n) int8 alt-allele dosage
    n: int  # members = [0, n), non-members = [n, 2n), reference = [2n, 3n)

    @property
    def members(self) -> np.ndarray:
        return self.dosage[:, : self.n]

    @property
    def nonmembers(self) -> np.ndarray:
        return self.dosage[:, self.n: 2 * self.n]

    @property
    def reference(self) -> np.ndarray:
        return self.dosage[:, 2 * self.n:]

    def ref_af(self) -> np.ndarray:
        return self.reference.sum(axis=1) / (2.0 * self.n)

    def member_ac(self) -> np.ndarray:
        return self.members.sum(axis=1).astype(np.int64)


def simulate(n: int = 1000, n_segments: int = 100, segment_bp: float = 200_000,
             seed: int = 7, cache: Path | None = None) -> Cohort:
    """3n diploids over ``n_segments`` unlinked segments (cached as .npz)."""
    if cache is not None:
        f = cache / f"privacy_n{n}_g{n_segments}_L{int(segment_bp)}_s{seed}.npz"
        if f.exists():
            z = np.load(f)
            return Cohort(z["pos"], z["segment"], z["dosage"], int(z["n"]))
    import msprime

    pos_l, seg_l, dos_l = [], [], []
    gap = int(segment_bp) + 1_000_000
    for s in range(n_segments):
        ts = msprime.sim_ancestry(samples=3 * n, sequence_length=segment_bp,
                                  recombination_rate=1e-8, population_size=1e4,
                                  random_seed=seed * 100_003 + s + 1)
        ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed * 100_003 + s + 1,
                                   discrete_genome=True)
        g = ts.genotype_matrix()  # (sites, 2 * 3n)
        keep = np.array([len(site.mutations) == 1 for site in ts.sites()], bool)
        if not keep.any():
            continue
        g = g[keep]
        p = ts.tables.sites.position[keep].astype(np.int64) + 1 + s * gap
        p, first = np.unique(p, return_index=True)
        g = g[first]
        d = (g[:, 0::2] + g[:, 1::2]).astype(np.int8)
        pos_l.append(p)
        seg_l.append(np.full(p.size, s, np.int32))
        dos_l.append(d)
    c = Cohort(np.concatenate(pos_l), np.concatenate(seg_l), np.concatenate(dos_l), n)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(f, pos=c.pos, segment=c.segment, dosage=c.dosage, n=c.n)
    return c


def write_members_vcf(c: Cohort, out: Path) -> Path:
    """The members' VCF (sites where a member carries the allele; bgzip + tabix)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    m = c.members
    keep = m.sum(axis=1) > 0
    gt = np.array(["0/0", "0/1", "1/1"])
    raw = out.with_suffix("")
    with open(raw, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=1>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
                 + "\t".join(f"m{i}" for i in range(c.n)) + "\n")
        for p, row in zip(c.pos[keep].tolist(), m[keep], strict=True):
            fh.write(f"1\t{p}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(gt[row].tolist()) + "\n")
    subprocess.run(["bgzip", "-f", str(raw)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(out)], check=True)
    return out


# --- attacks -----------------------------------------------------------------------------

def sb_terms(f: np.ndarray, n: int, delta: float = DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Per-query log-likelihood-ratio terms log L0/L1 for a 'no' and a 'yes' answer."""
    f = np.clip(f, 1.0 / (4 * n), 1 - 1e-9)
    log_dn = 2 * n * np.log1p(-f)
    log_dn1 = (2 * n - 2) * np.log1p(-f)
    no = log_dn - (np.log(delta) + log_dn1)
    yes = np.log(-np.expm1(log_dn)) - np.log1p(-delta * np.exp(log_dn1))
    return no, yes


def sb_statistic(answers: np.ndarray, f: np.ndarray, n: int) -> float:
    """Λ = log L(not in beacon) − log L(in beacon) over 0/1 answers; small means member."""
    no, yes = sb_terms(f, n)
    a = np.asarray(answers, bool)
    return float(np.where(a, yes, no).sum())


def aware_statistic(answers: np.ndarray, f: np.ndarray, n: int, threshold: int,
                    noise_sd: float = 0.0, count: str = "alleles") -> float:
    """A mechanism-aware LRT (not in the papers): the beacon says yes when its (noisy) AC
    reaches ``threshold`` — both public in every answer's disclosure section — so under
    "not in the beacon" AC ~ Binomial(2n, f), under "a het member" AC = 1 + Binomial(2n − 2,
    f), plus noise of standard deviation ``noise_sd`` (normal approximation). With ``count``
    ``carriers`` (also public) the count is of carriers: Binomial(n, q) and 1 +
    Binomial(n − 1, q), q = 1 − (1 − f)². Λ = log L(not in) − log L(in); small means
    member, as ``sb_statistic``."""
    from scipy import stats

    f = np.clip(np.asarray(f, np.float64), 1.0 / (4 * n), 1 - 1e-9)
    # trials of the count, and those left beside a het member's one allele / one carrier
    trials, rest, p = (2 * n, 2 * n - 2, f) if count == "alleles" else \
        (n, n - 1, 1 - (1 - f) ** 2)
    if noise_sd <= 0:
        p0 = stats.binom.sf(threshold - 1, trials, p)
        p1 = stats.binom.sf(threshold - 2, rest, p)
    else:
        m0, v0 = trials * p, trials * p * (1 - p)
        m1, v1 = 1 + rest * p, rest * p * (1 - p)
        p0 = stats.norm.sf((threshold - 0.5 - m0) / np.sqrt(v0 + noise_sd ** 2))
        p1 = stats.norm.sf((threshold - 0.5 - m1) / np.sqrt(v1 + noise_sd ** 2))
    p0, p1 = np.clip(p0, 1e-12, 1 - 1e-12), np.clip(p1, 1e-12, 1 - 1e-12)
    a = np.asarray(answers, bool)
    return float(np.where(a, np.log(p0) - np.log(p1), np.log1p(-p0) - np.log1p(-p1)).sum())


def sb_closed_form(f: float, n_beacon: int, n_queries: int, member: bool,
                   delta: float = DELTA) -> tuple[float, float]:
    """Mean and variance of Λ for n queries at one allele frequency f (SB 2015, eq. 5-8)."""
    d_n = (1 - f) ** (2 * n_beacon)
    d_n1 = (1 - f) ** (2 * n_beacon - 2)
    b = np.log(d_n / (delta * d_n1))
    c = np.log(delta * d_n1 * (1 - d_n) / (d_n * (1 - delta * d_n1)))
    p_yes = 1 - delta * d_n1 if member else 1 - d_n
    return float(n_queries * b + c * n_queries * p_yes), float(
        c * c * n_queries * p_yes * (1 - p_yes))


def ld_groups(ref: np.ndarray, segment: np.ndarray, sites: np.ndarray,
              r2_min: float = 0.8, window: int = 30) -> list[list[int]]:
    """Sites (indices into the cohort, sorted by rarity) grouped under a tag site: each
    later site in the same segment within ``window`` sites (of ``sites`` in position order)
    with reference r² ≥ r2_min joins the first (rarest) tag it is in LD with.

    The r² of every pair within the window is computed at once (banded products of the
    standardised reference dosages); only the greedy assignment is a loop.
    """
    order = np.asarray(sites, np.int64)
    if order.size == 0:
        return []
    srt = np.sort(order)
    x = ref[srt].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1)
    ok = sd > 0
    z = np.divide(x, sd[:, None], out=np.zeros_like(x), where=ok[:, None])
    m = srt.size
    # linked[i, d-1]: srt[i] and srt[i + d] (same segment, both polymorphic) have r² ≥ r2_min
    linked = np.zeros((m, window), bool)
    seg = segment[srt]
    for d in range(1, min(window, m - 1) + 1):
        r = (z[:-d] * z[d:]).mean(axis=1)
        linked[:-d, d - 1] = (r * r >= r2_min) & ok[:-d] & ok[d:] & (seg[:-d] == seg[d:])
    rank = {int(s): i for i, s in enumerate(srt.tolist())}
    nbrs: list[list[int]] = [[] for _ in range(m)]
    ii, dd = np.nonzero(linked)
    for i, d in zip(ii.tolist(), dd.tolist(), strict=True):
        j = i + d + 1
        nbrs[i].append(j)
        nbrs[j].append(i)
    assigned = np.zeros(m, bool)
    groups: list[list[int]] = []
    for s in order.tolist():
        i = rank[s]
        if assigned[i]:
            continue
        assigned[i] = True
        g = [s]
        for j in sorted(nbrs[i]):
            if not assigned[j]:
                assigned[j] = True
                g.append(int(srt[j]))
        groups.append(g)
    return groups


def lr_statistic(target: np.ndarray, pool_af: np.ndarray, ref_af: np.ndarray) -> float:
    """Sankararaman et al. 2009 LR of 'target in pool' over the released SNPs."""
    eps = 1e-3
    p = np.clip(pool_af, eps, 1 - eps)
    f = np.clip(ref_af, eps, 1 - eps)
    x = target.astype(np.float64)
    return float((x * np.log(p / f) + (2 - x) * np.log((1 - p) / (1 - f))).sum())


def lr_statistics(dosage: np.ndarray, pool_af: np.ndarray, ref_af: np.ndarray) -> np.ndarray:
    """``lr_statistic`` of every column of ``dosage`` (sites, people) at once."""
    eps = 1e-3
    p = np.clip(np.asarray(pool_af, np.float64), eps, 1 - eps)
    f = np.clip(np.asarray(ref_af, np.float64), eps, 1 - eps)
    x = np.asarray(dosage, np.float64)
    a, b = np.log(p / f), np.log((1 - p) / (1 - f))
    return (x * a[:, None] + (2 - x) * b[:, None]).sum(axis=0)


def power_at(member: np.ndarray, nonmember: np.ndarray, fpr: float = 0.05,
             larger_is_member: bool = True) -> float:
    m, nm = np.asarray(member, float), np.asarray(nonmember, float)
    if not larger_is_member:
        m, nm = -m, -nm
    thr = np.quantile(nm, 1 - fpr)
    return float((m > thr).mean())


def auc(member: np.ndarray, nonmember: np.ndarray, larger_is_member: bool = True) -> float:
    m, nm = np.asarray(member, float), np.asarray(nonmember, float)
    if not larger_is_member:
        m, nm = -m, -nm
    allv = np.concatenate([m, nm])
    ranks = allv.argsort().argsort().astype(float) + 1
    # average ties
    order = np.argsort(allv)
    sv = allv[order]
    i = 0
    while i < sv.size:
        j = i
        while j + 1 < sv.size and sv[j + 1] == sv[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r = ranks[: m.size].sum()
    return float((r - m.size * (m.size + 1) / 2) / (m.size * nm.size))


def het_sites(c: Cohort, person: int) -> np.ndarray:
    return np.flatnonzero(c.dosage[:, person] == 1)


def _nprocs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def read_gz_lines(p: Path) -> list[str]:  # pragma: no cover - debugging helper
    with gzip.open(p, "rt") as fh:
        return fh.readlines()
