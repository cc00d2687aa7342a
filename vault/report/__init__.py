"""The data-quality and representation (fairness) report of a dataset.

Built from the query service's disclosure-controlled answers (:mod:`vault.report.build`:
the whole report, or its representation part alone), rendered as one self-contained offline
HTML file (:mod:`vault.report.html`, plots as inline SVG from matplotlib) and the same
content as JSON; generated through a policy decision and one audit record
(:mod:`vault.report.run`, and the API route). See docs/report.md.
"""

from vault.report.build import build_report, build_representation
from vault.report.html import render_html
from vault.report.reference import load_reference, reference_from_params
from vault.report.run import ReportDenied, generate, write_report

__all__ = ["ReportDenied", "build_report", "build_representation", "generate",
           "load_reference", "reference_from_params", "render_html", "write_report"]
