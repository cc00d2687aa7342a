"""The report's data, built from the query service's answers (never its own genotype reads).

Sources, all with the disclosure obligations of the caller's policy decision:

* ``QueryService.statistic`` (missingness, hardy_weinberg, frequency; overall and grouped by
  every column) and ``vault.query.advanced.sfs``: per-variant answers that are already
  disclosure-controlled; the report only adds them up over variants (rare variants are not
  listed, so those sums are over the listed variants, and say so);
* ``vault.query.samplestats.sample_quality``: per-sample call rate and heterozygosity as
  binned histograms (bins below k merged) and per-group means — no per-sample value leaves it;
* each batch's exact QC report (``DatasetReader.batch_info``) shown through
  ``vault.privacy.cells.suppress_qc``, and the cohort's group sizes (per column, per batch,
  cross-tabulated) through :func:`vault.report.tables.protect_tables`, which adds the sums that
  tie these tables together (complementary suppression across tables).

Groups under ``min_group_size`` are never named (as in ``describe``): they appear as
"(group under minimum size #i)".
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from vault.privacy.cells import is_small, suppress_qc
from vault.query import advanced
from vault.query.samplestats import CALL_RATE_BINS, sample_quality
from vault.query.service import MAX_PAGE, Disclosure, QueryService, Selection
from vault.report.tables import SMALL, Sum, protect_tables

#: groups further than this from their reference share (ratio) are named in the summary
RATIO_LOW, RATIO_HIGH = 0.8, 1.25
#: a group's mean call rate this many points below the cohort's is named in the summary
CALL_RATE_GAP_POINTS = 1.0
QQ_POINTS = 400
TRANSITIONS = {("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")}
UNLABELLED = "(no label)"


def _rows(svc: QueryService, dataset: str, stat: str, group_by: str | None,
          d: Disclosure) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every listed variant of a statistic (all pages) and the summed disclosure."""
    rows: list[dict[str, Any]] = []
    cursor = 0
    summary = {"suppressed_cells": 0, "complementary_cells": 0, "rare_variant_cells": 0,
               "omitted_variants": 0, "refused_groups": 0}
    while True:
        page = svc.statistic(dataset, stat, Selection(), group_by, d, cursor=cursor,
                             limit=MAX_PAGE)
        rows.extend(page["variants"])
        disc = page["disclosure"]
        for key in ("suppressed_cells", "complementary_cells", "rare_variant_cells"):
            summary[key] += int(disc.get(key) or 0)
        # each page walks the variants from the start: the last one has counted them all
        summary["omitted_variants"] = int(disc.get("omitted_variants") or 0)
        summary["refused_groups"] = int(disc.get("refused_groups") or 0)
        if not page["truncated"]:
            break
        cursor = page["next_cursor"]
    return rows, summary


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


class _Names:
    """Display names: groups under the minimum size are not named."""

    def __init__(self, sizes: Mapping[str, Mapping[str, int]], min_group_size: int) -> None:
        self.map: dict[tuple[str, str], str] = {}
        self.small: dict[str, int] = {}
        for col, groups in sizes.items():
            i = 0
            for name in sorted(groups):
                if groups[name] < min_group_size:
                    i += 1
                    self.map[(col, name)] = f"(group under minimum size #{i})"
            self.small[col] = i

    def __call__(self, col: str, name: str | None) -> str:
        if name is None:
            return UNLABELLED
        return self.map.get((col, name), name)

    def named(self, col: str, name: str | None) -> bool:
        return name is not None and (col, name) not in self.map


def build_report(svc: QueryService, dataset: str, disclosure: Disclosure,
                 reference: Mapping[str, Mapping[str, float]] | None = None,
                 generated_by: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as plain JSON-able data. ``reference``: already validated shares
    (:func:`vault.report.reference.load_reference`)."""
    d = disclosure
    k = d.k
    v = svc.version(dataset)
    columns = list(v.cohort.columns)
    n_samples = int(v.cohort.n_samples)
    sizes = {c: svc.group_sizes(dataset, c) for c in columns}
    names = _Names(sizes, d.min_group_size)
    suppressed_list: list[dict[str, str]] = []

    # -- batches: exact QC, shown through suppress_qc ----------------------------------------
    batches = []
    for b in v.reader.batches:
        info = v.reader.batch_info(b)
        batches.append((b, info["qc"], suppress_qc(info["qc"], k)))

    # -- linked sample-count tables ----------------------------------------------------------
    cells: dict[Hashable, int] = {}
    sums: list[Sum] = []
    pre: list[Hashable] = []
    for c in columns:
        terms = []
        for g, n in sizes[c].items():
            cells[("col", c, g)] = int(n)
            terms.append(("col", c, g))
        cells[("col", c, None)] = n_samples - sum(sizes[c].values())
        terms.append(("col", c, None))
        sums.append(Sum(None, tuple(terms)))
    for b, qc, shown in batches:
        small_batch = is_small(b.n_samples, k)
        for c in columns:
            per = qc.get("groups", {}).get(c)
            row = {g: 0 for g in sizes[c]}
            row[None] = 0  # type: ignore[index]
            if per is None:
                row[None] = b.n_samples  # type: ignore[index]
            else:
                for g, cell in per.items():
                    key = None if g == "(unknown)" else g
                    row[key] = row.get(key, 0) + int(cell["samples"])  # type: ignore[index]
            terms = []
            for g, n in row.items():
                cid = ("batch", b.batch, c, g)
                cells[cid] = int(n)
                terms.append(cid)
                if small_batch:
                    pre.append(cid)
                elif per is not None:
                    shown_cell = shown["groups"][c].get("(unknown)" if g is None else g)
                    if shown_cell is not None and not isinstance(shown_cell["samples"], int):
                        pre.append(cid)
            if not small_batch:
                sums.append(Sum(None, tuple(terms)))
    for c in columns:
        for g in [*sizes[c], None]:
            sums.append(Sum(("col", c, g), tuple(("batch", b.batch, c, g)
                                                  for b, _, _ in batches)))
    pairs = list(itertools.combinations(columns, 2))
    labels = {c: np.asarray(v.cohort.grouping(c).codes) for c in columns}
    cross_counts: dict[tuple[str, str], np.ndarray] = {}
    for a, bcol in pairs:
        ga, gb = v.cohort.grouping(a), v.cohort.grouping(bcol)
        na, nb = len(ga.names) + 1, len(gb.names) + 1  # last slot: no label
        ia = np.where(labels[a] >= 0, labels[a], na - 1)
        ib = np.where(labels[bcol] >= 0, labels[bcol], nb - 1)
        table = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb)
        cross_counts[(a, bcol)] = table
        ra = [*ga.names, None]
        rb = [*gb.names, None]
        for i, x in enumerate(ra):
            for j, y in enumerate(rb):
                cells[("x", a, bcol, x, y)] = int(table[i, j])
        for x in ra:
            sums.append(Sum(("col", a, x), tuple(("x", a, bcol, x, y) for y in rb)))
        for y in rb:
            sums.append(Sum(("col", bcol, y), tuple(("x", a, bcol, x, y) for x in ra)))
    # a small group's whole row of a cross-tabulation is withheld, zeros too: "0 M" next to a
    # suppressed "F" would say that all of its few members are F
    pre_reasons: dict[Hashable, str] = dict.fromkeys(pre, "complementary")
    for cid in cells:
        if cid[0] == "x":
            _, a, bcol, x, y = cid  # type: ignore[misc]
            if is_small(cells[("col", a, x)], k) or is_small(cells[("col", bcol, y)], k):
                pre_reasons.setdefault(cid, "small group")
    prot = protect_tables(cells, sums, k, presuppressed=pre_reasons)

    def shown_count(cid: Hashable) -> int | None:
        return int(cells[cid]) if prot.released(cid) else None

    def note(table: str, cell: str, cid: Hashable) -> None:
        suppressed_list.append({"table": table, "cell": cell, "reason": prot.reasons[cid]})

    # -- representation: samples per group -----------------------------------------------------
    rep_columns: dict[str, Any] = {}
    for c in columns:
        groups = {}
        labelled = n_samples - cells[("col", c, None)]
        for g in [*sorted(sizes[c]), None]:
            cid = ("col", c, g)
            if g is None and cells[cid] == 0 and prot.released(cid):
                continue  # nobody unlabelled, and shown so: a row of zeros says nothing
            n = shown_count(cid)
            if n is None:
                note(f"samples per {c}", names(c, g), cid)
            groups[names(c, g)] = {
                "samples": n,
                "share": (n / labelled if labelled and g is not None else
                          n / n_samples if n_samples else None) if n is not None else None,
                "named": names.named(c, g) or g is None,
                "suppressed": prot.reasons.get(cid)}
        rep_columns[c] = {"groups": groups, "groups_under_minimum": names.small[c],
                          "labelled": labelled if prot.released(("col", c, None)) else None}
    crosstabs = []
    for a, bcol in pairs:
        ga, gb = v.cohort.grouping(a), v.cohort.grouping(bcol)
        def keep_none(col: str, other: str, other_names: tuple[str, ...], first: bool) -> bool:
            ids = [("x", col, other, None, y) if first else ("x", other, col, y, None)
                   for y in [*other_names, None]]
            return bool(cells[("col", col, None)]) or not prot.released(("col", col, None)) \
                or any(not prot.released(i) for i in ids)

        ra = [*ga.names] + ([None] if keep_none(a, bcol, gb.names, True) else [])
        rb = [*gb.names] + ([None] if keep_none(bcol, a, ga.names, False) else [])
        table_name = f"{a} × {bcol}"
        grid = []
        for x in ra:
            row = []
            for y in rb:
                cid = ("x", a, bcol, x, y)
                n = shown_count(cid)
                if n is None:
                    note(table_name, f"{names(a, x)} × {names(bcol, y)}", cid)
                row.append({"samples": n, "suppressed": prot.reasons.get(cid)})
            grid.append(row)
        crosstabs.append({
            "rows": a, "columns": bcol,
            "row_names": [names(a, x) for x in ra], "column_names": [names(bcol, y) for y in rb],
            "cells": grid,
            "row_totals": [shown_count(("col", a, x)) for x in ra],
            "column_totals": [shown_count(("col", bcol, y)) for y in rb],
            "total": n_samples})

    # -- data quality: per batch and overall -----------------------------------------------------
    qc_keys = ("records_read", "records_written", "variants_written", "multiallelic_records",
               "multiallelic_split_rows_added", "haploid_calls_as_homozygous",
               "half_calls_as_missing", "records_without_gt_as_missing")
    batch_rows = []
    overall_qc: dict[str, Any] = {key: 0 for key in qc_keys}
    overall_skips: dict[str, int] = {}
    missing_calls = 0.0
    total_calls = 0
    for b, qc, shown in batches:
        row: dict[str, Any] = {"batch": b.batch, "samples": b.n_samples,
                               **{key: int(qc.get(key) or 0) for key in qc_keys},
                               "skipped_records": dict(shown.get("skipped_records") or {})}
        miss = qc.get("missingness")
        row["call_rate"] = None if miss is None or is_small(b.n_samples, k) else 1 - miss
        for key in qc_keys:
            overall_qc[key] += row[key]
        for reason, n in row["skipped_records"].items():
            overall_skips[reason] = overall_skips.get(reason, 0) + int(n)
        if miss is not None:
            calls = int(qc.get("variants_written") or 0) * b.n_samples
            missing_calls += miss * calls
            total_calls += calls
        groups_out: dict[str, Any] = {}
        for c in columns:
            per = shown.get("groups", {}).get(c)
            if per is None:
                continue
            gout = {}
            for g in [*sorted(sizes[c]), None]:
                cid = ("batch", b.batch, c, g)
                if cells[cid] == 0 and g is None:
                    continue
                n = shown_count(cid)
                qcell = per.get("(unknown)" if g is None else g)
                mval = qcell.get("missingness") if (qcell and n is not None) else None
                if n is None:
                    note(f"batch {b.batch}: samples per {c}", names(c, g), cid)
                gout[names(c, g)] = {"samples": n,
                                     "call_rate": None if mval is None else 1 - mval,
                                     "suppressed": prot.reasons.get(cid)}
            groups_out[c] = gout
        row["groups"] = groups_out
        batch_rows.append(row)
    overall_qc["skipped_records"] = dict(sorted(overall_skips.items()))
    overall_qc["samples"] = n_samples
    overall_qc["call_rate"] = (1 - missing_calls / total_calls) if total_calls else None

    # -- per-variant answers -----------------------------------------------------------------
    answers: dict[str, Any] = {}
    miss_rows, answers["missingness"] = _rows(svc, dataset, "missingness", None, d)
    rates = np.array([r["overall"]["call_rate"] for r in miss_rows
                      if r["overall"]["call_rate"] is not None], np.float64)
    called = sum(r["overall"]["n_called"] for r in miss_rows
                 if r["overall"]["n_called"] is not None)
    possible = sum(r["overall"]["n"] for r in miss_rows if r["overall"]["n_called"] is not None)
    hist, _ = np.histogram(rates, bins=np.asarray(CALL_RATE_BINS))
    variant_call_rate = {
        "variants": int(rates.size),
        "omitted_rare_variants": answers["missingness"]["omitted_variants"],
        "call_rate": called / possible if possible else None,
        "below_95": int((rates < 0.95).sum()), "below_99": int((rates < 0.99).sum()),
        "histogram": [{"lo": float(CALL_RATE_BINS[i]), "hi": float(CALL_RATE_BINS[i + 1]),
                       "count": int(hist[i])} for i in range(hist.size)]}

    hwe_rows, answers["hardy_weinberg"] = _rows(svc, dataset, "hardy_weinberg", None, d)
    pvals = np.array(sorted(r["overall"]["hwe_p"] for r in hwe_rows
                            if r["overall"].get("hwe_p") is not None), np.float64)
    hwe = _hwe_summary(pvals, len(hwe_rows))

    freq_rows, answers["frequency"] = _rows(svc, dataset, "frequency", None, d)
    titv = _titv(freq_rows)
    sfs_answer = advanced.sfs(svc, dataset, Selection(), None, d, folded=True)
    sfs_overall = sfs_answer["spectra"]["overall"]
    sfs = {"folded": True, "counts": sfs_overall["counts"],
           "variants_used": sfs_overall["variants_used"],
           "variants_excluded": sfs_overall["variants_excluded"],
           "rules": sfs_answer["disclosure"]["rules"]}

    missing_by_group: dict[str, Any] = {}
    for c in columns:
        rows_c, answers[f"missingness by {c}"] = _rows(svc, dataset, "missingness", c, d)
        acc: dict[str, list[int]] = {}
        low: dict[str, int] = {}
        for r in rows_c:
            for g, cell in (r.get("groups") or {}).items():
                if cell.get("n_called") is None:
                    continue
                a = acc.setdefault(g, [0, 0, 0])
                a[0] += int(cell["n_called"])
                a[1] += int(cell["n"])
                a[2] += 1
                if cell.get("call_rate") is not None and cell["call_rate"] < 0.95:
                    low[g] = low.get(g, 0) + 1
        missing_by_group[c] = {
            "groups": {g: {"call_rate": a[0] / a[1] if a[1] else None, "variants": a[2],
                           "variants_below_95": low.get(g, 0)} for g, a in sorted(acc.items())},
            "refused_groups": answers[f"missingness by {c}"]["refused_groups"]}

    sq = sample_quality(svc, dataset, d, columns)
    for name in ("call_rate", "heterozygosity"):
        h = sq["histograms"][name]
        if h["merged_bins"]:
            suppressed_list.append({"table": f"per-sample {name.replace('_', ' ')} histogram",
                                    "cell": f"{h['merged_bins']} bin(s)",
                                    "reason": "merged (bins of 1..k-1 samples)"})
    group_quality: dict[str, Any] = {}
    for c in columns:
        gq = sq["groups"][c]
        rows_q = {}
        for g, row in gq["groups"].items():
            row = {**row, "samples": shown_count(("col", c, g))}
            if row["suppressed"]:
                suppressed_list.append({"table": f"measurement quality by {c}", "cell": g,
                                        "reason": row["suppressed"]})
            rows_q[g] = row
        group_quality[c] = {"groups": rows_q, "refused_groups": gq["refused_groups"]}

    # -- reference -----------------------------------------------------------------------------
    ref_out = None
    if reference:
        ref_out = {}
        for c, shares in reference.items():
            out_c = {}
            for g, expected in shares.items():
                cell = rep_columns[c]["groups"].get(g)
                observed = cell["share"] if cell else None
                out_c[g] = {"expected_share": expected, "observed_share": observed,
                            "ratio": (observed / expected) if observed is not None and expected
                            else None}
            ref_out[c] = out_c

    report: dict[str, Any] = {
        "title": f"GenoVault data-quality and representation report: {dataset}",
        "dataset": dataset,
        "dataset_version": v.key,
        "generated_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generated_by": dict(generated_by or {}),
        "cohort": {"samples": n_samples, "batches": len(batches),
                   "variant_rows": int(v.manifest.variant_rows),
                   "contigs": list(v.manifest.contigs), "group_columns": columns},
        "quality": {
            "batches": batch_rows, "overall": overall_qc,
            "variant_call_rate": variant_call_rate,
            "sample_call_rate": sq["histograms"]["call_rate"],
            "sample_heterozygosity": sq["histograms"]["heterozygosity"],
            "sample_overall": sq["overall"],
            "hardy_weinberg": hwe, "titv": titv, "sfs": sfs,
            "missingness_by_group": missing_by_group},
        "representation": {"columns": rep_columns, "crosstabs": crosstabs,
                           "reference": ref_out, "group_quality": group_quality},
        "disclosure": {
            "tier": d.tier, "k": k, "min_group_size": d.min_group_size,
            "rare_max_ac": d.rare_max_ac,
            "suppressed": suppressed_list,
            "suppressed_cells": sum(1 for s in suppressed_list if s["reason"] == SMALL),
            "complementary_cells": sum(1 for s in suppressed_list
                                       if s["reason"] == "complementary"),
            "answers": answers,
            "rules": _rules(d)},
    }
    report["summary"] = summary_sentences(report)
    return report


def _hwe_summary(pvals: np.ndarray, listed: int) -> dict[str, Any]:
    n = int(pvals.size)
    out: dict[str, Any] = {"variants_listed": listed, "variants_tested": n,
                           "below_1e-6": int((pvals < 1e-6).sum()),
                           "below_0.05": int((pvals < 0.05).sum()), "lambda_gc": None,
                           "qq": []}
    if n:
        obs = -np.log10(np.clip(pvals, 1e-300, 1.0))
        exp = -np.log10((np.arange(1, n + 1) - 0.5) / n)
        # thin the bulk, keep the tail: every point of the top 50, then evenly spaced ones
        idx = np.unique(np.concatenate([np.arange(min(50, n)),
                                        np.linspace(0, n - 1, min(QQ_POINTS, n)).astype(int)]))
        out["qq"] = [[round(float(exp[i]), 4), round(float(obs[i]), 4)] for i in idx]
        from scipy.stats import chi2

        med = float(np.median(pvals))
        out["lambda_gc"] = float(chi2.isf(med, 1) / chi2.ppf(0.5, 1)) if 0 < med < 1 else None
    return out


def _titv(rows: list[dict[str, Any]]) -> dict[str, Any]:
    per_pos: dict[tuple[str, int], int] = {}
    for r in rows:
        per_pos[(r["chrom"], r["pos"])] = per_pos.get((r["chrom"], r["pos"]), 0) + 1
    ti = tv = multi = 0
    for r in rows:
        ref, alt = r["ref"].upper(), r["alt"].upper()
        if len(ref) != 1 or len(alt) != 1 or ref not in "ACGT" or alt not in "ACGT":
            continue
        if per_pos[(r["chrom"], r["pos"])] > 1:
            multi += 1
            continue
        ac = r["overall"].get("ac")
        if not ac:
            continue
        if (ref, alt) in TRANSITIONS:
            ti += 1
        else:
            tv += 1
    return {"transitions": ti, "transversions": tv, "ratio": ti / tv if tv else None,
            "snvs": ti + tv, "excluded_multiallelic_rows": multi,
            "rule": "listed biallelic SNVs with ALT seen in the cohort (AC > 0); rows of a "
                    "split multiallelic site are left out; rare variants are not listed"}


def _rules(d: Disclosure) -> list[str]:
    return [
        f"counts of 1..{d.k - 1} people are never shown (k={d.k}); 0 is shown as 0",
        "complementary suppression: sample counts are tied by sums (groups + unlabelled = "
        "cohort; batches = group; rows and columns of a cross-tabulation = the groups' totals); "
        "no sum has a single suppressed term, so no suppressed cell follows by subtraction",
        f"groups of fewer than {d.min_group_size} samples are not named and get no "
        "per-group statistics (their samples stay in the overall figures)",
        "per-sample call rate and heterozygosity appear only as histogram bins over fixed "
        "edges, with bins of 1..k-1 samples merged into a neighbour",
        "per-variant statistics come from the query service's answers: rare variants (overall "
        "AC or REF 1..k-1) are not listed; suppressed cells are left out of every sum",
        "QC reports of the batches are shown through suppress_qc (small groups '<k')",
    ]


def summary_sentences(r: Mapping[str, Any]) -> list[str]:
    """The plain-language summary at the top of the report."""
    out = []
    q = r["quality"]
    cohort = r["cohort"]
    so = q.get("sample_overall") or {}
    cr = so.get("mean_call_rate")
    titv = q["titv"]
    out.append(f"{cohort['samples']} samples in {cohort['batches']} batch(es), "
               f"{cohort['variant_rows']} variant rows; overall call rate {_pct(cr)} (all "
               f"variants), {_pct(q['variant_call_rate']['call_rate'])} over the "
               f"{q['variant_call_rate']['variants']} listed variants; Ti/Tv "
               + ("—" if titv["ratio"] is None else f"{titv['ratio']:.2f}")
               + f" over {titv['snvs']} biallelic SNVs.")
    rep = r["representation"]
    gq = rep["group_quality"]
    flagged: set[tuple[str, str]] = set()
    if rep.get("reference"):
        for col, groups in rep["reference"].items():
            for g, x in groups.items():
                ratio = x["ratio"]
                if ratio is None:
                    out.append(f"Group {g} ({col}): its share of the cohort is suppressed "
                               f"(small count); the reference expects "
                               f"{_pct(x['expected_share'])}.")
                    continue
                if RATIO_LOW <= ratio <= RATIO_HIGH:
                    continue
                flagged.add((col, g))
                s = (f"Group {g} ({col}) is {_pct(x['observed_share'])} of the cohort vs "
                     f"{_pct(x['expected_share'])} of the reference (ratio {ratio:.2f}: "
                     + ("under" if ratio < 1 else "over") + "-represented)")
                s += _call_rate_clause(gq.get(col, {}).get("groups", {}).get(g), cr) + "."
                out.append(s)
        if not flagged:
            out.append(f"Every group in the reference is within a ratio of {RATIO_LOW}–"
                       f"{RATIO_HIGH} of its expected share.")
    else:
        out.append("No reference distribution was given (--reference target.tsv), so "
                   "representation is shown as counts and shares only.")
    for col, groups in gq.items():
        for g, row in groups["groups"].items():
            if (col, g) in flagged or cr is None or row.get("mean_call_rate") is None:
                continue
            gap = 100 * (cr - row["mean_call_rate"])
            if gap >= CALL_RATE_GAP_POINTS:
                out.append(f"Group {g} ({col}) is under-measured: its call rate is "
                           f"{gap:.1f} points lower than the cohort's "
                           f"({_pct(row['mean_call_rate'])} vs {_pct(cr)}).")
    d = r["disclosure"]
    out.append(f"Disclosure control (k={d['k']}, minimum group size {d['min_group_size']}): "
               f"{d['suppressed_cells']} small cell(s) and {d['complementary_cells']} "
               "complementary cell(s) suppressed in the tables of this report; see the "
               "Disclosure section for which and why.")
    return out


def _call_rate_clause(row: Mapping[str, Any] | None, cohort_rate: float | None) -> str:
    if not row or row.get("mean_call_rate") is None or cohort_rate is None:
        return "; its call rate is not shown (suppressed or refused)"
    gap = 100 * (cohort_rate - row["mean_call_rate"])
    if abs(gap) < 0.05:
        return f"; its call rate is the cohort's ({_pct(row['mean_call_rate'])})"
    return (f"; its call rate is {abs(gap):.1f} points " + ("lower" if gap > 0 else "higher")
            + f" ({_pct(row['mean_call_rate'])} vs {_pct(cohort_rate)})")


def is_finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
