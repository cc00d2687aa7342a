"""Printing for the CLI: every text that may hold stored values goes through :func:`safe`.

Stored strings (contig names, group labels, file names, ids) come from input files that
someone else wrote. Control characters would let such a string drive the terminal (an OSC
escape can retitle a window or forge a hyperlink), so they are replaced before printing,
whether or not the output is a terminal.
"""

from __future__ import annotations

import re
from typing import Any

import click

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Leading characters that make a spreadsheet treat a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(text: object) -> str:
    """``text`` with every control or bidi-override character (but tab and newline) shown as
    ``\\xNN`` (``\\uNNNN`` above U+00FF, so that ``\\u202e`` does not read as a space and
    "2e")."""
    return _CONTROL.sub(_escape, str(text))


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def tsv_cell(value: object) -> str:
    """A TSV/CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = safe("" if value is None else value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def echo(text: object = "", *, err: bool = False) -> None:
    click.echo(safe(text), err=err)


def _shown(value: object) -> str:
    return "suppressed" if value is None else str(value)


def print_qc(qc: dict[str, Any]) -> None:
    """The QC report of one batch, as plain lines."""
    miss = qc["missingness"]
    echo(f"  records read {qc['records_read']}, written {qc['records_written']}, "
         f"variants (rows) {qc['variants_written']}")
    echo(f"  multiallelic records {qc['multiallelic_records']} "
         f"(+{qc['multiallelic_split_rows_added']} rows from splitting)")
    echo(f"  haploid calls stored as homozygous {_shown(qc['haploid_calls_as_homozygous'])}, "
         f"half-calls stored as missing {_shown(qc['half_calls_as_missing'])}")
    skipped = qc["skipped_records"]
    echo("  skipped records: " + (", ".join(f"{k} {v}" for k, v in skipped.items())
                                  if skipped else "none"))
    echo(f"  samples {qc['samples']}, missingness "
         f"{'n/a' if miss is None else f'{miss:.4f}'}")
    if qc.get("suppressed"):
        echo(f"  ({qc['suppressed']})")
    for col, groups in qc["groups"].items():
        parts = []
        for g, v in groups.items():
            m = v["missingness"]
            miss_txt = "n/a" if m is None else f"{m:.4f}"
            parts.append(f"{g} n={v['samples']} miss={miss_txt}")
        echo(f"  {col}: " + "; ".join(parts))
