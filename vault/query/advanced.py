"""Association, LD, SFS and presence: statistics that are not one cell per group.

Same rules as vault.query.service: rare sites are not listed, small cells are null with
everything derived from them, and only aggregates leave.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels import Status, case_control_tests, count_genotypes, ld_r2, site_frequency_spectrum
from kernels.variant_stats import allele_counts
from vault.errors import ConfigError
from vault.privacy.disclosure import NONE, REASON_NAMES, protect, small_cells
from vault.query.service import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Disclosure,
    QueryService,
    Selection,
)
from vault.store.reader import Region

MAX_LD_WINDOW = 100
MAX_REGION_FOR_LD = 5_000_000


def _value(x: float) -> float | None:
    f = float(x)
    return None if np.isnan(f) else f


def association(svc: QueryService, dataset: str, selection: Selection, phenotype: str,
                case: str, control: str, disclosure: Disclosure, cursor: int = 0,
                limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """Allelic chi-square, Fisher, trend test and odds ratio, cases vs controls."""
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
    v = svc.version(dataset)
    if phenotype not in v.cohort.columns:
        raise ConfigError(f"unknown phenotype column {phenotype!r}")
    # An absent group and one under the minimum size get the same refusal: which names
    # exist as small groups (a rare diagnosis) is not said, as describe() does not say it
    g = v.cohort.grouping(phenotype)
    sizes = dict(zip(g.names, g.sizes.tolist(), strict=True))
    for label in (case, control):
        if sizes.get(label, 0) < disclosure.min_group_size:
            raise ConfigError(f"column {phenotype!r} has no group {label!r} of at least "
                              f"{disclosure.min_group_size} samples (the policy's minimum)")
    # Suppression is decided over every released group of the column, exactly as for
    # genotype counts grouped by it: protected as two groups alone, the column's other
    # groups would be one hidden part that shields, and a case or control cell released
    # here but complementary there gives a suppressed group as overall − the others.
    grouping, _ = svc._grouping(v, phenotype, disclosure)
    if grouping is None:  # not reached: phenotype is a column
        raise ConfigError(f"unknown phenotype column {phenotype!r}")
    ci, ki = grouping.names.index(case), grouping.names.index(control)
    rows: list[dict[str, Any]] = []
    seen = omitted = suppressed = 0
    truncated = False
    for c in svc._counts(v, selection, grouping):
        if disclosure.noise is not None:  # registered tier: tests from the noisy counts
            from vault.privacy.dp import noisy_counts

            # rare variants are never listed, so neither noised nor charged (what the
            # answer costs must not say that one is stored: QueryService._noised)
            noisy_o, noisy_g = noisy_counts(disclosure.noise, v.release_key, c.contig, c.pos,
                                            c.ref, c.alt, c.overall, c.groups,
                                            svc._wanted(c, selection)
                                            & svc._listable(c, disclosure.k), phenotype,
                                            grouping.names)
            # a new object: the cached exact counts must stay exact for other callers
            c = c.with_counts(noisy_o, noisy_g)
        prot = protect(c.overall, c.groups, grouping.sizes, disclosure.k, "genotypes",
                       disclosure.rare_max_ac)
        res = case_control_tests(c.groups[:, ci], c.groups[:, ki])
        wanted = svc._wanted(c, selection)
        rare_site = svc._unlisted(c, disclosure)
        omitted += int((wanted & rare_site).sum())
        for i in np.flatnonzero(wanted & ~rare_site).tolist():
            if seen < cursor:
                seen += 1
                continue
            if len(rows) >= limit:
                truncated = True
                break
            ok = prot.groups[i, ci] == NONE and prot.groups[i, ki] == NONE
            cells = {}
            reasons = []
            for label, gi in ((case, ci), (control, ki)):
                released = prot.groups[i, gi] == NONE
                cnt = c.groups[i, gi]
                cells[label] = {"n": int(cnt.sum()),
                                **({"hom_ref": int(cnt[0]), "het": int(cnt[1]),
                                    "hom_alt": int(cnt[2]), "missing": int(cnt[3])}
                                   if released else
                                   {"hom_ref": None, "het": None, "hom_alt": None,
                                    "missing": None})}
                if not released:
                    reasons.append({"cell": f"groups.{label}",
                                    "reason": REASON_NAMES[int(prot.groups[i, gi])]})
                    suppressed += 1
            row = {"chrom": c.contig, "pos": int(c.pos[i]), "ref": c.ref[i], "alt": c.alt[i],
                   "groups": cells,
                   "test": {
                       "allelic_chi2": _value(res.chi2[i]) if ok else None,
                       "allelic_p": _value(res.chi2_p[i]) if ok else None,
                       "fisher_p": _value(res.fisher_p[i]) if ok else None,
                       "trend_p": _value(res.trend_p[i]) if ok else None,
                       "odds_ratio": _value(res.odds_ratio[i]) if ok else None,
                       "or_ci_low": _value(res.or_ci_low[i]) if ok else None,
                       "or_ci_high": _value(res.or_ci_high[i]) if ok else None,
                   },
                   "suppressed": reasons}
            rows.append(row)
            seen += 1
        if truncated:
            break
    return {"dataset_version": v.key, "statistic": "association", "group_by": phenotype,
            "case": case, "control": control, "variants": rows, "count": len(rows),
            "truncated": truncated, "next_cursor": cursor + len(rows) if truncated else None,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k,
                           "min_group_size": disclosure.min_group_size, "kind": "genotypes",
                           "suppressed_cells": suppressed,
                           "rules": ["test results are null when a case or control cell is "
                                     "suppressed"]}}


def ld(svc: QueryService, dataset: str, region: Region, disclosure: Disclosure,
       window_variants: int = 10, window_bp: int | None = None, min_r2: float = 0.0,
       cursor: int = 0, limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """r² between listed variants of one region within a window."""
    if region.end is None or region.end - region.start + 1 > MAX_REGION_FOR_LD:
        raise ConfigError(f"LD needs a region of at most {MAX_REGION_FOR_LD:,} bp "
                          "(CHROM:START-END)")
    if not 1 <= window_variants <= MAX_LD_WINDOW:
        raise ConfigError(f"window_variants must be between 1 and {MAX_LD_WINDOW}")
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
    v = svc.version(dataset)
    pairs: list[dict[str, Any]] = []
    seen = 0
    truncated = False
    suppressed = 0
    for ci, bi in v.reader.partitions(region):
        block = svc._block(v, ci, bi)
        if block is None or block.packed is None:
            continue
        pos = block.sites.column("pos").to_numpy()
        lo = int(np.searchsorted(pos, region.start, "left"))
        hi = int(np.searchsorted(pos, region.end, "right"))
        if hi - lo < 2:
            continue
        packed = block.packed[lo:hi]
        codes = np.full(block.n_samples, -1, np.int32)
        overall = count_genotypes(packed, block.n_samples, codes, 0).overall
        listed = ~small_cells(overall, disclosure.k, "genotypes")
        idx = np.flatnonzero(listed)
        suppressed += int((~listed).sum())
        if idx.size < 2:
            continue
        # every pair of the window, then disclosure control, then min_r2: a threshold applied
        # to withheld pairs too would say on which side of it their r² lies
        res = ld_r2(np.ascontiguousarray(packed[idx]), block.n_samples, pos[lo:hi][idx],
                    window_variants, window_bp, 0.0)
        released = _ld_released(res, disclosure.k)
        shown = released & (res.status == Status.OK) & (res.r2 >= min_r2) if min_r2 > 0 \
            else np.ones(res.i.size, np.bool_)
        sites = block.sites.slice(lo, hi - lo)
        ref = sites.column("ref").to_pylist()
        alt = sites.column("alt").to_pylist()
        for p in np.flatnonzero(shown).tolist():
            if seen < cursor:
                seen += 1
                continue
            if len(pairs) >= limit:
                truncated = True
                break
            a, b = int(idx[res.i[p]]), int(idx[res.j[p]])
            ok = bool(released[p])
            pairs.append({
                "a": {"chrom": block.contig, "pos": int(pos[lo + a]), "ref": ref[a],
                      "alt": alt[a]},
                "b": {"chrom": block.contig, "pos": int(pos[lo + b]), "ref": ref[b],
                      "alt": alt[b]},
                "r": _value(res.r[p]) if ok else None,
                "r2": _value(res.r2[p]) if ok else None,
                "n_obs": int(res.n_obs[p]) if ok else None,
                "status": Status(int(res.status[p])).name.lower() if ok else "suppressed"})
            seen += 1
        if truncated:
            break
    return {"dataset_version": v.key, "statistic": "ld", "pairs": pairs, "count": len(pairs),
            "truncated": truncated, "next_cursor": cursor + len(pairs) if truncated else None,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k, "kind": "genotypes",
                           "omitted_variants": suppressed,
                           "rules": ["variants with a genotype or allele count of 1..k-1 "
                                     "take part in no pair", "pairs observed in fewer than k "
                                     "samples are null", "a pair is null when r with the two "
                                     "variants' genotype counts would give a joint count of "
                                     "1..k-1 (how many ALT or REF alleles at one variant meet "
                                     "an ALT or REF allele at the other in the same person)",
                                     "min_r2 leaves out null pairs whatever their r²"]}}


def _ld_released(res: Any, k: int) -> np.ndarray:
    """Which pairs may show r: observed in at least k samples, and no joint allele sum of
    the pair in 1..k-1. With the two variants' genotype counts (released), r gives
    sum xy = Σ x_i y_i of the ALT dosages exactly (an integer), and with it the three other
    weighted sums of the allele-level 2×2 table — ALT meets REF (2·Σx − Σxy, 2·Σy − Σxy) and
    REF meets REF (4n − 2Σx − 2Σy + Σxy). A review found Σxy = 1 (one person carries
    both) in pairs of 18 and 15 carriers; each of the four must be 0 or at least k."""
    n, sx, sy, sxy = res.n_obs, res.sx, res.sy, res.sxy
    joint = np.stack([sxy, 2 * sx - sxy, 2 * sy - sxy, 4 * n - 2 * sx - 2 * sy + sxy])
    small = ((joint >= 1) & (joint < k)).any(axis=0)
    return np.asarray((n >= k) & ~small, np.bool_)


def sfs(svc: QueryService, dataset: str, selection: Selection, group_by: str | None,
        disclosure: Disclosure, folded: bool = False) -> dict[str, Any]:
    """Site-frequency spectrum overall and per group (counts of variants, not of people)."""
    v = svc.version(dataset)
    grouping, refused = svc._grouping(v, group_by, disclosure)
    names = grouping.names if grouping else ()
    n_chrom_all = 2 * v.cohort.n_samples
    sizes = grouping.sizes if grouping else np.zeros(0, np.int64)
    # every spectrum has its full length from the start, whatever is stored: built only
    # from the partitions a region reaches, a region of one position holding only a rare
    # variant answered a spectrum of zeros and an empty one ``[]`` (the SFS said whether a
    # variant is stored there)
    none = np.zeros(0, np.int64)
    specs: dict[str, np.ndarray] = {
        name: site_frequency_spectrum(none, none, n_chrom, folded).counts
        for name, n_chrom in [("overall", n_chrom_all),
                              *((n, 2 * int(sizes[g])) for g, n in enumerate(names))]}
    used = {"overall": 0, **{n: 0 for n in names}}
    excluded = dict(used)
    suppressed = 0
    for c in svc._counts(v, selection, grouping):
        # A spectrum over a region of one variant is that variant's AC per group: it may count
        # only the cells a frequency answer of the same variants and groups releases (listed
        # variants; no small, complementary or rare-variant cell), so that it says nothing the
        # frequency answer does not.
        rare_site = svc._rare_sites(c, disclosure.k)
        prot = protect(c.overall, c.groups, sizes, disclosure.k, "alleles",
                       disclosure.rare_max_ac)
        released = {"overall": ~rare_site & (prot.overall == NONE)}
        released |= {n: ~rare_site & (prot.groups[:, g] == NONE) for g, n in enumerate(names)}
        suppressed += int((~rare_site).sum()) * (1 + len(names)) - sum(
            int(r.sum()) for r in released.values())
        cells = [("overall", c.overall, n_chrom_all)]
        cells += [(n, c.groups[:, g], 2 * int(grouping.sizes[g]))  # type: ignore[union-attr]
                  for g, n in enumerate(names)]
        for name, counts, n_chrom in cells:
            ac, an = allele_counts(counts[released[name]])
            s = site_frequency_spectrum(ac, an, n_chrom, folded)
            specs[name] = specs[name] + s.counts
            used[name] += s.n_used
            excluded[name] += s.n_excluded
    out = {name: {"counts": specs[name].tolist(),
                  "variants_used": used[name], "variants_excluded": excluded[name]}
           for name in ["overall", *names]}
    return {"dataset_version": v.key, "statistic": "sfs", "folded": folded,
            "group_by": group_by, "spectra": out,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k,
                           "min_group_size": disclosure.min_group_size,
                           "refused_groups": refused, "kind": "alleles",
                           "suppressed_cells": suppressed,
                           "rules": ["spectra count variants, not people; groups smaller "
                                     "than min_group_size are refused",
                                     "a spectrum counts only the cells a frequency answer "
                                     "releases: variants whose overall AC or REF count is "
                                     "1..k-1 are left out (not counted anywhere: that count "
                                     "would say a rare variant exists), and so is every "
                                     "suppressed cell (suppressed_cells)"]}}


def presence(svc: QueryService, dataset: str, chrom: str, pos: int, ref: str, alt: str,
             disclosure: Disclosure) -> dict[str, Any]:
    """Is this allele present? True when at least k alleles carry it; otherwise null —
    absent, rare and never-sequenced are the same answer."""
    v = svc.version(dataset)
    sel = Selection(variants=((chrom, pos, ref, alt),))
    exists: bool | None = None
    if disclosure.noise is not None:
        return _noisy_presence(svc, v, sel, chrom, pos, ref, alt, disclosure)
    for c in svc._counts(v, sel, None):
        wanted = svc._wanted(c, sel)
        for i in np.flatnonzero(wanted).tolist():
            ac = int(c.overall[i, 1] + 2 * c.overall[i, 2])
            if ac >= disclosure.k and not small_cells(c.overall[i], disclosure.k, "alleles"):
                exists = True
    return {"dataset_version": v.key, "statistic": "presence",
            "variant": {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt},
            "exists": exists,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k,
                           "rules": ["exists is true only when at least k alleles carry the "
                                     "variant and its REF count is not 1..k-1; otherwise "
                                     "null, the same for absent, rare and not assessed"]}}


def _noisy_presence(svc: QueryService, v: Any, sel: Selection, chrom: str, pos: int, ref: str,
                    alt: str, disclosure: Disclosure) -> dict[str, Any]:
    """Registered tier: exists = noisy AC >= threshold, from the variant's noisy overall
    cell (a variant not in the dataset is noised from zero counts, like an absent one); with
    the policy's ``dp.presence``, the member-information-budget mechanism instead."""
    from vault.privacy.dp import cell_key

    session = disclosure.noise
    if getattr(session, "presence", None) is not None:
        return _member_budget_presence(svc, v, chrom, pos, ref, alt, disclosure)
    exact = np.array([v.cohort.n_samples, 0, 0, 0], np.int64)
    for c in svc._counts(v, sel, None):
        for i in np.flatnonzero(svc._wanted(c, sel)).tolist():
            exact = np.asarray(c.overall[i], np.int64)
    noisy = session.cells(v.release_key, [cell_key(chrom, pos, ref, alt)], exact[None, :])[0]
    threshold = session.presence_threshold(disclosure.k)
    ac = int(noisy[1] + 2 * noisy[2])
    return {"dataset_version": v.key, "statistic": "presence",
            "variant": {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt},
            "exists": True if ac >= threshold else None,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k,
                           "presence_threshold": threshold,
                           "rules": [f"exists is true when the noisy AC of the variant is at "
                                     f"least {threshold} (k plus a margin of the noise); "
                                     "otherwise null, the same for absent, rare and not "
                                     "assessed"]}}


def _variant_codes(svc: QueryService, v: Any, chrom: str, pos: int, ref: str,
                   alt: str) -> np.ndarray | None:
    """The genotype codes (one per sample, 0/1/2/3) of one variant, read through the
    service's own reader and block cache inside the trust boundary; None when the dataset
    does not hold it. Never leaves this module: only the carriers' budgets use it."""
    from vault.privacy.presence import unpack_row

    region = Region(chrom, pos, pos)
    for ci, bi in v.reader.partitions(region):
        block = svc._block(v, ci, bi)
        if block is None or block.packed is None:
            continue
        at = block.sites.column("pos").to_numpy()
        lo = int(np.searchsorted(at, pos, "left"))
        hi = int(np.searchsorted(at, pos, "right"))
        if hi <= lo:
            continue
        refs = block.sites.column("ref").slice(lo, hi - lo).to_pylist()
        alts = block.sites.column("alt").slice(lo, hi - lo).to_pylist()
        for j, (r, a) in enumerate(zip(refs, alts, strict=True)):
            if r == ref and a == alt:
                return unpack_row(block.packed[lo + j], block.n_samples)
    return None


def _member_budget_presence(svc: QueryService, v: Any, chrom: str, pos: int, ref: str,
                            alt: str, disclosure: Disclosure) -> dict[str, Any]:
    """Registered tier with ``dp.presence``: the presence answer paid from the per-member
    information budget (vault.privacy.presence; the ledger does the accounting)."""
    from vault.privacy.dp import cell_key
    from vault.privacy.presence import PresenceNoise, carriers_of

    session = disclosure.noise
    params = session.presence
    codes = _variant_codes(svc, v, chrom, pos, ref, alt)
    if codes is None:  # not stored: no carriers, noised like an absent allele
        members, copies = np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        members, copies = carriers_of(codes)
    threshold = params.threshold(disclosure.k)
    noise = PresenceNoise(params.scale)
    rel = session.ledger.presence(
        session.principal, v.release_key, cell_key(chrom, pos, ref, alt, "presence"), members,
        copies,
        params, threshold, noise.draw, role=session.role, display_name=session.display_name,
        dataset=session.dataset, query_id=session.query_id)
    return {"dataset_version": v.key, "statistic": "presence",
            "variant": {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt},
            "exists": True if rel.exists else None,
            "disclosure": {"tier": disclosure.tier, "k": disclosure.k,
                           **params.summary(disclosure.k),
                           "rules": params.rules(disclosure.k)}}
