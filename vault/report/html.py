"""The report as one self-contained HTML file: inline CSS, inline SVG plots, no script, no
external resource of any kind (no CDN, no font, no image URL): it opens offline."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from vault.report import plots

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
color:#1d2733;background:#f6f7f9;line-height:1.45}
main{max-width:1080px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #33658a;padding-bottom:4px;
margin-top:1.8em}h3{margin-top:1.4em}
.meta{color:#5b6876;font-size:.9em}
.summary{background:#eef4f8;border-left:5px solid #33658a;padding:10px 18px 10px 30px}
.summary li{margin:.35em 0}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
th,td{border:1px solid #d5dbe1;padding:3px 9px;text-align:right}
th{background:#f0f3f6}td.l,th.l{text-align:left}
.sup{color:#a23b3b;font-style:italic}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:.4em 0}figcaption{font-size:.85em;color:#5b6876;max-width:640px}
svg.plot{max-width:100%;height:auto}
.note{font-size:.85em;color:#5b6876}
footer{margin-top:2em;font-size:.8em;color:#5b6876}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _n(x: Any) -> str:
    if x is None:
        return '<span class="sup">suppressed</span>'
    if isinstance(x, float):
        return f"{x:.4g}"
    return _e(x)


def _p(x: float | None, digits: int = 1) -> str:
    return '<span class="sup">suppressed</span>' if x is None else f"{100 * x:.{digits}f} %"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1,
           cls: str = "") -> str:
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def render_html(r: Mapping[str, Any]) -> str:
    """The page of a whole report, or of its representation part alone (no quality)."""
    q = r.get("quality")
    rep = r["representation"]
    d = r["disclosure"]
    parts: list[str] = []
    by = r.get("generated_by") or {}
    parts.append(f"<h1>{_e(r['title'])}</h1>")
    parts.append(f'<p class="meta">Dataset <b>{_e(r["dataset"])}</b>, version '
                 f'{_e(r["dataset_version"])}; generated {_e(r["generated_at"])}'
                 + (f" for role {_e(by.get('role'))}" if by.get("role") else "")
                 + (f", audit record {_e(by.get('query_id'))}" if by.get("query_id") else "")
                 + f". Disclosure control: k = {d['k']}, minimum group size "
                 f"{d['min_group_size']}, tier {_e(d['tier'])}.</p>")
    parts.append('<section id="summary"><h2>Summary</h2><ul class="summary">'
                 + "".join(f"<li>{_e(s)}</li>" for s in r["summary"]) + "</ul></section>")

    # -- representation ------------------------------------------------------------------
    parts.append('<section id="representation"><h2>Representation</h2>')
    ref = rep.get("reference") or {}
    for col, info in rep["columns"].items():
        parts.append(f"<h3>Samples per {_e(col)}</h3>")
        rows = []
        shares: dict[str, float | None] = {}
        for g, cell in info["groups"].items():
            rc = ref.get(col, {}).get(g)
            row = [_e(g), _n(cell["samples"]), _p(cell["share"])]
            if ref.get(col):
                row += [_p(rc["expected_share"]) if rc else "",
                        (f"{rc['ratio']:.2f}" if rc and rc["ratio"] is not None else
                         ('<span class="sup">suppressed</span>' if rc else ""))]
            rows.append(row)
            if g != "(no label)" and not g.startswith("(group under"):
                shares[g] = cell["share"]
        table = _table([col, "samples", "share", *(["reference share", "ratio"]
                                                   if ref.get(col) else [])], rows)
        svg = plots.bars(shares, f"share of samples by {col}", "% of labelled samples",
                         f"share by {col}", pct=True,
                         reference={g: x["expected_share"] for g, x in ref.get(col, {}).items()}
                         or None)
        note = (f'<p class="note">{info["groups_under_minimum"]} group(s) under the minimum '
                "size, not named.</p>" if info["groups_under_minimum"] else "")
        caption = f"Share of each {col} group in the cohort" + (
            " (bars) and in the reference (black marks)" if ref.get(col) else "")
        parts.append(f'<div class="grid"><div>{table}{note}</div>'
                     f"{_figure(svg, caption)}</div>")
    for x in rep["crosstabs"]:
        parts.append(f"<h3>{_e(x['rows'])} × {_e(x['columns'])}</h3>")
        head = [f"{x['rows']} \\ {x['columns']}", *x["column_names"], "total"]
        rows = []
        for name, cells, total in zip(x["row_names"], x["cells"], x["row_totals"],
                                      strict=True):
            rows.append([_e(name), *[_n(c["samples"]) for c in cells], _n(total)])
        rows.append(["<b>total</b>", *[_n(t) for t in x["column_totals"]], _n(x["total"])])
        parts.append(_table(head, rows))
    parts.append("<h3>Measurement quality by group</h3>"
                 '<p class="note">Means of per-sample values over every variant; variants '
                 "seen: ALT allele carried by someone in the group; private: carried only "
                 "in the group. Groups under the minimum size are refused.</p>")
    for col, info in rep["group_quality"].items():
        rows = [[_e(g), _n(row["samples"]), _p(row["mean_call_rate"], 2),
                 _p(row["mean_heterozygosity"], 2), _n(row["variants_seen"]),
                 _n(row["private_variants"])] for g, row in info["groups"].items()]
        parts.append(_table([col, "samples", "mean call rate", "mean heterozygosity",
                             "variants seen", "private variants"], rows))
        if info["refused_groups"]:
            parts.append(f'<p class="note">{info["refused_groups"]} group(s) of {_e(col)} '
                         "refused (under the minimum size).</p>")
    parts.append("</section>")

    if q is not None:
        parts.append(_quality(q, d))
    parts.append(_disclosure(d))
    parts.append('<footer id="report-end">GenoVault report — every number above passed the '
                 "same disclosure control as the API; no sample id, pseudonym or per-sample "
                 "value is shown.</footer>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{_e(r['title'])}</title><style>{_CSS}</style></head><body><main>"
            + "".join(parts) + "</main></body></html>\n")


def _quality(q: Mapping[str, Any], d: Mapping[str, Any]) -> str:
    parts: list[str] = []
    parts.append('<section id="quality"><h2>Data quality</h2>')
    keys = [("records_read", "records read"), ("records_written", "records written"),
            ("variants_written", "variant rows written"),
            ("multiallelic_records", "multiallelic records"),
            ("multiallelic_split_rows_added", "rows added by splitting"),
            ("haploid_calls_as_homozygous", "haploid calls (as homozygous)"),
            ("half_calls_as_missing", "half calls (as missing)"),
            ("records_without_gt_as_missing", "records without GT (as missing)")]
    batches = q["batches"]
    head = ["", *[f"batch {b['batch']}" for b in batches], "overall"]
    rows = [["samples", *[_n(b["samples"]) for b in batches], _n(q["overall"]["samples"])]]
    for key, label in keys:
        rows.append([_e(label), *[_n(b[key]) for b in batches], _n(q["overall"][key])])
    reasons = sorted({x for b in batches for x in b["skipped_records"]})
    for reason in reasons:
        rows.append([f"skipped: {_e(reason)}",
                     *[_n(b["skipped_records"].get(reason, 0)) for b in batches],
                     _n(q["overall"]["skipped_records"].get(reason, 0))])
    if not reasons:
        rows.append(["skipped records", *["0" for _ in batches], "0"])
    rows.append(["call rate (all variants)", *[_p(b["call_rate"], 2) for b in batches],
                 _p(q["overall"]["call_rate"], 2)])
    parts.append("<h3>Ingest QC per batch</h3>" + _table(head, rows))
    for b in batches:
        for col, groups in b["groups"].items():
            rows = [[_e(g), _n(c["samples"]), _p(c["call_rate"], 2)] for g, c in groups.items()]
            parts.append(f'<p class="note">Batch {_e(b["batch"])}, by {_e(col)}:</p>'
                         + _table([col, "samples", "call rate"], rows))
    vcr = q["variant_call_rate"]
    figs = [_figure(plots.histogram(vcr["histogram"], "call rate across variants",
                                    "call rate (%)", "variants", "variant call rate"),
                    f"Call rate of the {vcr['variants']} listed variants (overall "
                    f"{100 * (vcr['call_rate'] or 0):.2f} %; {vcr['below_95']} below 95 %; "
                    f"{vcr['omitted_rare_variants']} rare variants not listed).")]
    for key, title, xl, pct in (("sample_call_rate", "per-sample call rate", "call rate (%)",
                                 True),
                                ("sample_heterozygosity", "per-sample heterozygosity",
                                 "het / called (%)", True)):
        h = q[key]
        figs.append(_figure(plots.histogram(h["bins"], title, xl, "samples", title, pct),
                            f"{title.capitalize()}: counts of samples per bin over fixed "
                            f"edges; {h['merged_bins']} bin merge(s) so that no bin holds "
                            f"1..{d['k'] - 1} samples."))
    hw = q["hardy_weinberg"]
    figs.append(_figure(plots.qq(hw["qq"], "HWE p-values (QQ)", "hwe qq"),
                        f"Hardy-Weinberg exact test, {hw['variants_tested']} released "
                        f"variants; {hw['below_1e-6']} with p < 1e-6; λ = "
                        + ("—" if hw["lambda_gc"] is None else f"{hw['lambda_gc']:.2f}")
                        + "."))
    s = q["sfs"]
    figs.append(_figure(plots.sfs(s["counts"], "site-frequency spectrum (folded)", "sfs"),
                        f"Folded SFS over {s['variants_used']} fully called variants "
                        f"({s['variants_excluded']} with a missing call left out)."))
    parts.append('<h3>Distributions</h3><div class="grid">' + "".join(figs) + "</div>")
    t = q["titv"]
    parts.append("<h3>Transitions / transversions</h3>"
                 + _table(["", "value"], [["transitions", _n(t["transitions"])],
                                          ["transversions", _n(t["transversions"])],
                                          ["Ti/Tv", "—" if t["ratio"] is None
                                           else f"{t['ratio']:.3f}"],
                                          ["split multiallelic rows left out",
                                           _n(t["excluded_multiallelic_rows"])]])
                 + f'<p class="note">{_e(t["rule"])}</p>')
    parts.append("<h3>Missingness by group</h3>")
    figs = []
    for col, info in q["missingness_by_group"].items():
        vals = {g: x["call_rate"] for g, x in info["groups"].items()}
        rows = [[_e(g), _p(x["call_rate"], 2), _n(x["variants"]), _n(x["variants_below_95"])]
                for g, x in info["groups"].items()]
        figs.append(f"<div>{_table([col, 'call rate', 'variants', 'below 95 %'], rows)}"
                    + _figure(plots.bars(vals, f"call rate by {col}", "call rate (%)",
                                         f"call rate by {col}", pct=True),
                              f"Call rate per {col} group over the listed variants.")
                    + "</div>")
    parts.append('<div class="grid">' + "".join(figs) + "</div></section>")
    return "".join(parts)


def _disclosure(d: Mapping[str, Any]) -> str:
    parts: list[str] = []
    parts.append('<section id="disclosure"><h2>Disclosure</h2><ul>'
                 + "".join(f"<li>{_e(x)}</li>" for x in d["rules"]) + "</ul>")
    if d["suppressed"]:
        parts.append(f"<p>{len(d['suppressed'])} cell(s) or bins withheld:</p>"
                     + _table(["table", "cell", "reason"],
                              [[_e(x["table"]), _e(x["cell"]), _e(x["reason"])]
                               for x in d["suppressed"]], left=3))
    else:
        parts.append("<p>No cell of this report's tables had to be suppressed.</p>")
    if d.get("answers"):
        rows = [[_e(name), _n(a["suppressed_cells"]), _n(a["complementary_cells"]),
                 _n(a["rare_variant_cells"]), _n(a["omitted_variants"]),
                 _n(a["refused_groups"])] for name, a in d["answers"].items()]
        parts.append("<p>Per-variant answers of the query service behind this report:</p>"
                     + _table(["answer", "suppressed cells", "complementary", "rare-variant",
                               "rare variants not listed", "groups refused"], rows))
    parts.append("</section>")
    return "".join(parts)
