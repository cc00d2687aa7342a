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
  cross-tabulated) through :func:`vault.privacy.tables.protect_tables`, which adds the sums
  that tie these tables together (complementary suppression across tables).

Groups under ``min_group_size`` are never named (as in ``describe``): they appear as
"(group under minimum size #i)".

:func:`build_report` is the whole report (admins); :func:`build_representation` its
representation part alone, for the columns a researcher's role may group by. Both suppress
the linked tables of *every* column and batch together, so the cells a part shows are a
subset of the cells the whole report shows: asking for fewer columns never releases a cell
that another request would have hidden (no differencing between parts).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vault.errors import ConfigError
from vault.privacy.cells import is_small, suppress_qc
from vault.privacy.tables import COMPLEMENTARY, SMALL, Protected, Sum, protect_tables
from vault.query import advanced
from vault.query.samplestats import CALL_RATE_BINS, sample_quality
from vault.query.service import MAX_PAGE, Disclosure, QueryService, Selection
from vault.store.manifest import Batch

#: a cell of the linked sample-count tables: ("col", column, group), ("batch", batch,
#: column, group) or ("x", row column, column column, row group, column group); a group of
#: None is the unlabelled samples
CellId = tuple[str | None, ...]

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
    summary: dict[str, Any] = {"suppressed_cells": 0, "complementary_cells": 0,
                               "rare_variant_cells": 0, "omitted_variants": 0,
                               "refused_groups": 0}
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


_QC_KEYS = ("records_read", "records_written", "variants_written", "multiallelic_records",
            "multiallelic_split_rows_added", "haploid_calls_as_homozygous",
            "half_calls_as_missing", "records_without_gt_as_missing")


@dataclass
class _BatchQC:
    batch: Batch
    qc: dict[str, Any]  # exact: only read here, never shown
    shown: dict[str, Any]  # through suppress_qc

    @property
    def n_samples(self) -> int:
        """The batch's samples that count (withdrawn ones left out, as in ``qc``)."""
        return int(self.qc.get("samples", self.batch.n_samples))


@dataclass
class _Tables:
    """The linked sample-count tables of every column and batch, suppressed together."""

    cells: dict[CellId, int]
    prot: Protected[CellId]

    def shown(self, cid: CellId) -> int | None:
        return int(self.cells[cid]) if self.prot.released(cid) else None

    def reason(self, cid: CellId) -> str | None:
        return self.prot.reasons.get(cid)


@dataclass
class _Cohort:
    """What both parts of the report start from."""

    version: Any
    columns: list[str]
    n_samples: int
    sizes: dict[str, dict[str, int]]
    names: _Names
    batches: list[_BatchQC]
    tables: _Tables


def _cohort(svc: QueryService, dataset: str, d: Disclosure) -> _Cohort:
    v = svc.version(dataset)
    columns = list(v.cohort.columns)
    n_samples = int(v.cohort.n_samples)
    sizes = {c: svc.group_sizes(dataset, c) for c in columns}
    batches = []
    for b in v.reader.batches:
        qc = v.reader.batch_info(b)["qc"]
        batches.append(_BatchQC(b, qc, suppress_qc(qc, d.k)))
    tables = _linked_tables(v, columns, n_samples, sizes, batches, d.k)
    return _Cohort(v, columns, n_samples, sizes, _Names(sizes, d.min_group_size), batches,
                   tables)


def _linked_tables(v: Any, columns: Sequence[str], n_samples: int,
                   sizes: Mapping[str, Mapping[str, int]], batches: Sequence[_BatchQC],
                   k: int) -> _Tables:
    """Every sample count of the report and the sums tying them, suppressed as one system."""
    cells: dict[CellId, int] = {}
    sums: list[Sum[CellId]] = []
    pre: list[CellId] = []
    for c in columns:
        terms: list[CellId] = []
        for g, n in sizes[c].items():
            cells[("col", c, g)] = int(n)
            terms.append(("col", c, g))
        cells[("col", c, None)] = n_samples - sum(sizes[c].values())
        terms.append(("col", c, None))
        sums.append(Sum(None, tuple(terms)))
    for bq in batches:
        b = bq.batch
        small_batch = is_small(bq.n_samples, k)
        for c in columns:
            per = bq.qc.get("groups", {}).get(c)
            row: dict[str | None, int] = {g: 0 for g in sizes[c]}
            row[None] = 0
            if per is None:
                row[None] = bq.n_samples
            else:
                for g, cell in per.items():
                    key = None if g == "(unknown)" else str(g)
                    row[key] = row.get(key, 0) + int(cell["samples"])
            terms = []
            for grp, n in row.items():
                cid: CellId = ("batch", b.batch, c, grp)
                cells[cid] = int(n)
                terms.append(cid)
                if small_batch:
                    pre.append(cid)
                elif per is not None:
                    shown_cell = bq.shown["groups"][c].get("(unknown)" if grp is None else grp)
                    if shown_cell is not None and not isinstance(shown_cell["samples"], int):
                        pre.append(cid)
            if not small_batch:
                sums.append(Sum(None, tuple(terms)))
    for c in columns:
        for grp in [*sizes[c], None]:
            sums.append(Sum(("col", c, grp), tuple(("batch", bq.batch.batch, c, grp)
                                                    for bq in batches)))
    codes = {c: np.asarray(v.cohort.grouping(c).codes) for c in columns}
    for a, bcol in itertools.combinations(columns, 2):
        ga, gb = v.cohort.grouping(a), v.cohort.grouping(bcol)
        na, nb = len(ga.names) + 1, len(gb.names) + 1  # last slot: no label
        ia = np.where(codes[a] >= 0, codes[a], na - 1)
        ib = np.where(codes[bcol] >= 0, codes[bcol], nb - 1)
        table = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb)
        ra: list[str | None] = [*ga.names, None]
        rb: list[str | None] = [*gb.names, None]
        for i, x in enumerate(ra):
            for j, y in enumerate(rb):
                cells[("x", a, bcol, x, y)] = int(table[i, j])
        for x in ra:
            sums.append(Sum(("col", a, x), tuple(("x", a, bcol, x, y) for y in rb)))
        for y in rb:
            sums.append(Sum(("col", bcol, y), tuple(("x", a, bcol, x, y) for x in ra)))
    # a small group's whole row of a cross-tabulation is withheld, zeros too: "0 M" next to a
    # suppressed "F" would say that all of its few members are F
    pre_reasons: dict[CellId, str] = dict.fromkeys(pre, COMPLEMENTARY)
    for cid in cells:
        if cid[0] == "x":
            _, ra_col, rb_col, x, y = cid
            if is_small(cells[("col", ra_col, x)], k) or is_small(cells[("col", rb_col, y)], k):
                pre_reasons.setdefault(cid, "small group")
    return _Tables(cells, protect_tables(cells, sums, k, presuppressed=pre_reasons))


class _Notes:
    """The list of withheld cells of the tables a part shows (table, cell, reason)."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, table: str, cell: str, reason: str | None) -> None:
        self.items.append({"table": table, "cell": cell, "reason": str(reason)})


def _representation(co: _Cohort, columns: Sequence[str], sq: Mapping[str, Any],
                    reference: Mapping[str, Mapping[str, float]] | None,
                    notes: _Notes) -> dict[str, Any]:
    """Samples per group, cross-tabulations, per-group measurement quality and the reference
    ratios for ``columns`` (a subset of the cohort's, in its order)."""
    t, names, n_samples = co.tables, co.names, co.n_samples

    def shown(cid: CellId, table: str, cell: str) -> int | None:
        n = t.shown(cid)
        if n is None:
            notes.add(table, cell, t.reason(cid))
        return n

    rep_columns: dict[str, Any] = {}
    for c in columns:
        groups: dict[str, Any] = {}
        labelled = n_samples - t.cells[("col", c, None)]
        for g in [*sorted(co.sizes[c]), None]:
            cid: CellId = ("col", c, g)
            if g is None and t.cells[cid] == 0 and t.prot.released(cid):
                continue  # nobody unlabelled, and shown so: a row of zeros says nothing
            n = shown(cid, f"samples per {c}", names(c, g))
            share = None
            if n is not None:
                base = labelled if g is not None else n_samples
                share = n / base if base else None
            groups[names(c, g)] = {"samples": n, "share": share,
                                   "named": names.named(c, g) or g is None,
                                   "suppressed": t.reason(cid)}
        rep_columns[c] = {"groups": groups, "groups_under_minimum": names.small[c],
                          "labelled": labelled if t.prot.released(("col", c, None)) else None}

    def keep_none(col: str, other: str, other_names: Sequence[str], first: bool) -> bool:
        """Whether a cross-tabulation needs its unlabelled row (or column)."""
        ids: list[CellId] = [("x", col, other, None, y) if first else ("x", other, col, y, None)
                             for y in [*other_names, None]]
        return bool(t.cells[("col", col, None)]) or not t.prot.released(("col", col, None)) \
            or any(not t.prot.released(i) for i in ids)

    crosstabs = []
    for a, bcol in itertools.combinations(columns, 2):
        ga, gb = co.version.cohort.grouping(a), co.version.cohort.grouping(bcol)
        ra: list[str | None] = [*ga.names]
        rb: list[str | None] = [*gb.names]
        if keep_none(a, bcol, gb.names, True):
            ra.append(None)
        if keep_none(bcol, a, ga.names, False):
            rb.append(None)
        table_name = f"{a} × {bcol}"
        grid = [[{"samples": shown(("x", a, bcol, x, y), table_name,
                                   f"{names(a, x)} × {names(bcol, y)}"),
                  "suppressed": t.reason(("x", a, bcol, x, y))} for y in rb] for x in ra]
        crosstabs.append({
            "rows": a, "columns": bcol,
            "row_names": [names(a, x) for x in ra], "column_names": [names(bcol, y) for y in rb],
            "cells": grid,
            "row_totals": [t.shown(("col", a, x)) for x in ra],
            "column_totals": [t.shown(("col", bcol, y)) for y in rb],
            "total": n_samples})

    group_quality: dict[str, Any] = {}
    for c in columns:
        gq = sq["groups"][c]
        rows_q = {}
        for g, row in gq["groups"].items():
            out = {**row, "samples": t.shown(("col", c, g))}
            if out["suppressed"]:
                notes.add(f"measurement quality by {c}", g, out["suppressed"])
            rows_q[g] = out
        group_quality[c] = {"groups": rows_q, "refused_groups": gq["refused_groups"]}

    ref_out: dict[str, Any] | None = None
    if reference:
        ref_out = {}
        for c, shares in reference.items():
            out_c = {}
            for g, expected in shares.items():
                cell = rep_columns.get(c, {}).get("groups", {}).get(g)
                observed = cell["share"] if cell else None
                out_c[g] = {"expected_share": expected, "observed_share": observed,
                            "ratio": (observed / expected) if observed is not None and expected
                            else None}
            ref_out[c] = out_c
    return {"columns": rep_columns, "crosstabs": crosstabs, "reference": ref_out,
            "group_quality": group_quality}


def _disclosure(d: Disclosure, notes: _Notes, rules: list[str]) -> dict[str, Any]:
    return {"tier": d.tier, "k": d.k, "min_group_size": d.min_group_size,
            "rare_max_ac": d.rare_max_ac, "suppressed": notes.items,
            "suppressed_cells": sum(1 for s in notes.items if s["reason"] == SMALL),
            "complementary_cells": sum(1 for s in notes.items if s["reason"] == COMPLEMENTARY),
            "rules": rules}


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_representation(svc: QueryService, dataset: str, disclosure: Disclosure,
                         columns: Sequence[str] | None = None,
                         reference: Mapping[str, Mapping[str, float]] | None = None,
                         generated_by: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The representation part alone, for ``columns`` (None: every column): samples per
    group, cross-tabulations, per-group measurement quality, reference ratios — with the
    same suppressed cells as the whole report (see the module docstring)."""
    d = disclosure
    co = _cohort(svc, dataset, d)
    wanted = co.columns if columns is None else list(columns)
    unknown = [c for c in wanted if c not in co.columns]
    if unknown:
        raise ConfigError(f"unknown group column(s) {', '.join(map(repr, unknown))}; this "
                          f"dataset has: {', '.join(co.columns) or 'none'}")
    cols = [c for c in co.columns if c in wanted]
    if reference:
        extra = [c for c in reference if c not in cols]
        if extra:
            raise ConfigError(f"the reference names column(s) {', '.join(map(repr, extra))} "
                              "that this representation does not show")
    sq = sample_quality(svc, dataset, d, cols)
    notes = _Notes()
    rep = _representation(co, cols, sq, reference, notes)
    overall = sq["overall"] or {}
    body: dict[str, Any] = {
        "title": f"GenoVault representation report: {dataset}",
        "part": "representation",
        "dataset": dataset,
        "dataset_version": co.version.key,
        "generated_at": _now(),
        "generated_by": dict(generated_by or {}),
        "cohort": {"samples": co.n_samples, "group_columns": cols,
                   "mean_call_rate": overall.get("mean_call_rate")},
        "representation": rep,
        "disclosure": {**_disclosure(d, notes, _rules(d, part="representation")),
                       "kind": "representation"},
    }
    body["summary"] = summary_sentences(body)
    return body


def build_report(svc: QueryService, dataset: str, disclosure: Disclosure,
                 reference: Mapping[str, Mapping[str, float]] | None = None,
                 generated_by: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as plain JSON-able data. ``reference``: already validated shares
    (:func:`vault.report.reference.load_reference`)."""
    d = disclosure
    k = d.k
    co = _cohort(svc, dataset, d)
    v, columns, n_samples, t = co.version, co.columns, co.n_samples, co.tables
    notes = _Notes()

    # -- data quality: per batch and overall -----------------------------------------------
    batch_rows = []
    overall_qc: dict[str, Any] = dict.fromkeys(_QC_KEYS, 0)
    rate_withheld = False  # a batch's call rate is not shown: nor is the overall one
    overall_skips: dict[str, int] = {}
    missing_calls = 0.0
    total_calls = 0
    for bq in co.batches:
        b, qc, shown = bq.batch, bq.qc, bq.shown
        # the QC of the samples that count (vault.store.reader: withdrawn ones left out);
        # a per-call total that could not be recounted without them is None (withheld)
        row: dict[str, Any] = {"batch": b.batch, "samples": bq.n_samples,
                               **{key: None if key in shown and shown[key] is None
                                  else int(qc.get(key) or 0) for key in _QC_KEYS},
                               "skipped_records": dict(shown.get("skipped_records") or {})}
        miss = qc.get("missingness")
        row["call_rate"] = None if miss is None or is_small(bq.n_samples, k) else 1 - miss
        for key in _QC_KEYS:
            overall_qc[key] = None if row[key] is None or overall_qc[key] is None \
                else overall_qc[key] + row[key]
        for reason, n in row["skipped_records"].items():
            overall_skips[reason] = overall_skips.get(reason, 0) + int(n)
        if miss is not None and row["call_rate"] is None:
            rate_withheld = True
        if miss is not None:
            calls = int(qc.get("variants_written") or 0) * bq.n_samples
            missing_calls += miss * calls
            total_calls += calls
        groups_out: dict[str, Any] = {}
        for c in columns:
            per = shown.get("groups", {}).get(c)
            if per is None:
                continue
            gout = {}
            for g in [*sorted(co.sizes[c]), None]:
                cid: CellId = ("batch", b.batch, c, g)
                if t.cells[cid] == 0 and g is None:
                    continue
                shown_n = t.shown(cid)
                qcell = per.get("(unknown)" if g is None else g)
                mval = qcell.get("missingness") if (qcell and shown_n is not None) else None
                if shown_n is None:
                    notes.add(f"batch {b.batch}: samples per {c}", co.names(c, g), t.reason(cid))
                gout[co.names(c, g)] = {"samples": shown_n,
                                        "call_rate": None if mval is None else 1 - mval,
                                        "suppressed": t.reason(cid)}
            groups_out[c] = gout
        row["groups"] = groups_out
        batch_rows.append(row)
    overall_qc["skipped_records"] = dict(sorted(overall_skips.items()))
    overall_qc["samples"] = n_samples
    # with the other batches' rates shown, the overall rate would give the withheld one
    overall_qc["call_rate"] = (1 - missing_calls / total_calls) if total_calls and \
        not rate_withheld else None

    # -- per-variant answers -----------------------------------------------------------------
    answers: dict[str, Any] = {}
    miss_rows, answers["missingness"] = _rows(svc, dataset, "missingness", None, d)
    rates = np.array([r["overall"]["call_rate"] for r in miss_rows
                      if r["overall"]["call_rate"] is not None], np.float64)
    called = sum(r["overall"]["n_called"] for r in miss_rows
                 if r["overall"]["n_called"] is not None)
    possible = sum(r["overall"]["n"] for r in miss_rows if r["overall"]["n_called"] is not None)
    hist, _ = np.histogram(rates, bins=np.asarray(CALL_RATE_BINS))
    variant_call_rate: dict[str, Any] = {
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
                tally = acc.setdefault(g, [0, 0, 0])
                tally[0] += int(cell["n_called"])
                tally[1] += int(cell["n"])
                tally[2] += 1
                if cell.get("call_rate") is not None and cell["call_rate"] < 0.95:
                    low[g] = low.get(g, 0) + 1
        missing_by_group[c] = {
            "groups": {g: {"call_rate": x[0] / x[1] if x[1] else None, "variants": x[2],
                           "variants_below_95": low.get(g, 0)} for g, x in sorted(acc.items())},
            "refused_groups": answers[f"missingness by {c}"]["refused_groups"]}

    sq = sample_quality(svc, dataset, d, columns)
    for name in ("call_rate", "heterozygosity"):
        h = sq["histograms"][name]
        if h["merged_bins"]:
            notes.add(f"per-sample {name.replace('_', ' ')} histogram",
                      f"{h['merged_bins']} bin(s)", "merged (bins of 1..k-1 samples)")
    representation = _representation(co, columns, sq, reference, notes)

    report: dict[str, Any] = {
        "title": f"GenoVault data-quality and representation report: {dataset}",
        "part": "all",
        "dataset": dataset,
        "dataset_version": v.key,
        "generated_at": _now(),
        "generated_by": dict(generated_by or {}),
        "cohort": {"samples": n_samples, "batches": len(co.batches),
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
        "representation": representation,
        "disclosure": {**_disclosure(d, notes, _rules(d)), "answers": answers},
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


def _rules(d: Disclosure, part: str = "all") -> list[str]:
    common = [
        f"counts of 1..{d.k - 1} people are never shown (k={d.k}); 0 is shown as 0",
        "complementary suppression: sample counts are tied by sums (groups + unlabelled = "
        "cohort; batches = group; rows and columns of a cross-tabulation = the groups' totals); "
        "no sum has a single suppressed term, so no suppressed cell follows by subtraction",
        f"groups of fewer than {d.min_group_size} samples are not named and get no "
        "per-group statistics (their samples stay in the overall figures)",
    ]
    if part == "representation":
        return [*common,
                "the tables of every grouping column and batch are suppressed together, as in "
                "the whole report: this part shows a subset of the cells the whole report "
                "shows, whichever columns it covers",
                "per-group means only for groups of at least min_group_size samples; if the "
                "samples outside them are 1..k-1, the smallest group is suppressed too"]
    return [
        *common,
        "per-sample call rate and heterozygosity appear only as histogram bins over fixed "
        "edges, with bins of 1..k-1 samples merged into a neighbour",
        "per-variant statistics come from the query service's answers: rare variants (overall "
        "AC or REF 1..k-1) are not listed; suppressed cells are left out of every sum",
        "QC reports of the batches are shown through suppress_qc (small groups '<k')",
    ]


def summary_sentences(r: Mapping[str, Any]) -> list[str]:
    """The plain-language summary at the top of the report (or of its representation
    part, which has no quality section)."""
    out = []
    cohort = r["cohort"]
    q = r.get("quality")
    if q is not None:
        cr = (q.get("sample_overall") or {}).get("mean_call_rate")
        titv = q["titv"]
        out.append(f"{cohort['samples']} samples in {cohort['batches']} batch(es), "
                   f"{cohort['variant_rows']} variant rows; overall call rate {_pct(cr)} (all "
                   f"variants), {_pct(q['variant_call_rate']['call_rate'])} over the "
                   f"{q['variant_call_rate']['variants']} listed variants; Ti/Tv "
                   + ("—" if titv["ratio"] is None else f"{titv['ratio']:.2f}")
                   + f" over {titv['snvs']} biallelic SNVs.")
    else:
        cr = cohort.get("mean_call_rate")
        cols = ", ".join(cohort["group_columns"]) or "none"
        out.append(f"{cohort['samples']} samples; mean per-sample call rate {_pct(cr)}; "
                   f"grouping columns shown: {cols}.")
    out += _representation_sentences(r["representation"], cr)
    d = r["disclosure"]
    out.append(f"Disclosure control (k={d['k']}, minimum group size {d['min_group_size']}): "
               f"{d['suppressed_cells']} small cell(s) and {d['complementary_cells']} "
               "complementary cell(s) suppressed in the tables of this report; see the "
               "Disclosure section for which and why.")
    return out


def _representation_sentences(rep: Mapping[str, Any], cr: float | None) -> list[str]:
    out = []
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
        out.append("No reference distribution was given (--reference target.tsv, or the "
                   "API's reference=column:group=share), so representation is shown as "
                   "counts and shares only.")
    for col, groups in gq.items():
        for g, row in groups["groups"].items():
            if (col, g) in flagged or cr is None or row.get("mean_call_rate") is None:
                continue
            gap = 100 * (cr - row["mean_call_rate"])
            if gap >= CALL_RATE_GAP_POINTS:
                out.append(f"Group {g} ({col}) is under-measured: its call rate is "
                           f"{gap:.1f} points lower than the cohort's "
                           f"({_pct(row['mean_call_rate'])} vs {_pct(cr)}).")
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
