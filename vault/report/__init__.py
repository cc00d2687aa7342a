"""The data-quality and representation (fairness) report of a dataset.

Built from the query service's disclosure-controlled answers (:mod:`vault.report.build`),
rendered as one self-contained offline HTML file (:mod:`vault.report.html`, plots as inline
SVG from matplotlib) and the same content as JSON; generated through a policy decision and
one audit record (:mod:`vault.report.run`). See docs/report.md.
"""

from vault.report.build import build_report
from vault.report.html import render_html
from vault.report.reference import load_reference
from vault.report.run import ReportDenied, generate, write_report

__all__ = ["ReportDenied", "build_report", "generate", "load_reference", "render_html",
           "write_report"]
