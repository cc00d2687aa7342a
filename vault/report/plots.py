"""The report's plots: matplotlib figures as inline SVG (text stays text, nothing external).

Each function takes the report's data (already disclosure-controlled) and returns an SVG
string ready to embed in HTML: no XML prolog, no DOCTYPE, no namespace URLs, ids prefixed so
that several figures can share a page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_STYLE: Any = {"svg.fonttype": "none", "svg.hashsalt": "genovault-report", "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
COLOURS = ("#33658a", "#f26419", "#2f9c95", "#86bbd8", "#f6ae2d", "#758e4f", "#9a348e")
_counter = [0]


def _svg(fig: Any, name: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight",
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    _counter[0] += 1
    prefix = f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{_counter[0]}-"
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    text = text.replace("<svg", f'<svg class="plot" data-plot="{name}" role="img" '
                                f'aria-label="{name}"', 1)
    return text


def _bin_label(lo: float, hi: float, pct: bool = True) -> str:
    if pct:
        return f"{100 * lo:g}–{100 * hi:g}"
    return f"{lo:g}–{hi:g}"


def histogram(bins: Sequence[Mapping[str, Any]], title: str, xlabel: str, ylabel: str,
              name: str, pct: bool = True) -> str:
    """Bars per (possibly merged) bin, one slot each, labelled with the bin's range."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        labels = [_bin_label(b["lo"], b["hi"], pct) for b in bins]
        counts = [0 if b["count"] is None else b["count"] for b in bins]
        xs = range(len(bins))
        ax.bar(xs, counts, color=COLOURS[0])
        ax.set_xticks(list(xs), labels, rotation=60, ha="right")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        for x, b in zip(xs, bins, strict=True):
            if b["count"] is None:
                ax.text(x, 0, "suppressed", rotation=90, ha="center", va="bottom")
        return _svg(fig, name)


def qq(points: Sequence[Sequence[float]], title: str, name: str) -> str:
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(3.6, 3.4))
        if points:
            ex = [p[0] for p in points]
            ob = [p[1] for p in points]
            top = max(max(ex), max(ob)) * 1.05
            ax.plot([0, top], [0, top], color="#999999", lw=1)
            ax.scatter(ex, ob, s=6, color=COLOURS[1])
        ax.set_xlabel("expected −log10 p")
        ax.set_ylabel("observed −log10 p")
        ax.set_title(title)
        return _svg(fig, name)


def bars(values: Mapping[str, float | None], title: str, ylabel: str, name: str,
         pct: bool = False, reference: Mapping[str, float] | None = None) -> str:
    """One bar per group (None: 'suppressed'); optional reference markers."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(2.6, 0.7 * len(values) + 1.4), 2.4))
        keys = list(values)
        xs = range(len(keys))
        scale = 100 if pct else 1
        ys = [0.0 if (val := values[g]) is None else val * scale for g in keys]
        ax.bar(xs, ys, color=[COLOURS[i % len(COLOURS)] for i in xs], label="cohort")
        if reference:
            rx = [i for i, g in enumerate(keys) if g in reference]
            ry = [reference[keys[i]] * (100 if pct else 1) for i in rx]
            ax.scatter(rx, ry, marker="_", s=600, color="black", zorder=3, label="reference")
            ax.legend(frameon=False, loc="best")
        for x, g in zip(xs, keys, strict=True):
            if values[g] is None:
                ax.text(x, 0, "suppressed", rotation=90, ha="center", va="bottom")
        ax.set_xticks(list(xs), keys, rotation=30 if len(keys) > 4 else 0,
                      ha="right" if len(keys) > 4 else "center")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        lo = [y for y in ys if y]
        if pct and lo and min(lo) > 80 and not reference:
            ax.set_ylim(min(lo) - 2, 100.5)
        return _svg(fig, name)


def sfs(counts: Sequence[int], title: str, name: str, max_bins: int = 40) -> str:
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(4.6, 2.6))
        shown = list(counts[1:max_bins + 1])
        ax.bar(range(1, len(shown) + 1), shown, color=COLOURS[2])
        ax.set_xlabel("minor allele count (folded)")
        ax.set_ylabel("variants")
        ax.set_title(title)
        return _svg(fig, name)
