"""Bulk VCF record parser: decompressed VCF text -> site fields + packed 2-bit genotypes.

This is the fast path of ingest. A chunk of complete VCF data lines (a ``uint8`` array
ending in ``\\n``) is parsed by numba kernels that run in parallel over lines and release
the GIL. The rules (see docs/format.md) are applied here:

* GT must be the first FORMAT key; alleles are separated by ``/`` or ``|``.
* Multiallelic records are split per ALT allele like ``bcftools norm -m-``: in the row for
  ALT k, allele k counts as ALT and every other allele as REF.
* Codes: 0 hom-ref, 1 het, 2 hom-alt, 3 missing; sample s sits in byte s // 4 at bits
  2*(s % 4); padding bits are 0.
* Haploid calls count as homozygous diploid (plink2's convention) and are counted per row;
  half-calls (``./1``) become missing (plink2 ``--vcf-half-call missing``) and are counted;
  ploidy > 2 is an error.

Every problem found is reported per line as an error code (see ``ERRORS``); the caller turns
the first one into a message with file and line, or skips the line with ``--skip-invalid``.
BCF records come as the same ``ParsedChunk`` (vault.ingest.bcf): ``buf`` then holds the
records' first eight columns as VCF text (INFO included), genotypes come from the typed GT
vectors.

The kernels live in modules of their own; this module is the entry point and re-exports
what the pipeline uses:

* ``vcf_errors``: the error codes and messages (``E_*``, ``ERRORS``).
* ``vcf_scan``: line ends (``find_lines`` takes a GT-only line's end from its length, checked
  later by the genotype parser), contig runs, ALT allele bounds, Arrow string gathering.
* ``vcf_fields``: the fixed columns (CHROM..FORMAT) and their validators.
* ``vcf_gt``: GT decoding into packed codes, missingness per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vault.ingest.limits import OverlongLine, max_line_bytes
from vault.ingest.vcf_errors import (
    E_ALLELE,
    E_ALT,
    E_CHROM,
    E_CHROM_COLON,
    E_EMPTY,
    E_FEW_SAMPLES,
    E_FIELDS,
    E_FORMAT_TWICE,
    E_FORMAT_VALUES,
    E_GT,
    E_LONG_LINE,
    E_MANY_SAMPLES,
    E_NO_GT,
    E_OK,
    E_PLOIDY,
    E_POS,
    E_QUAL,
    E_REF,
    E_TRAILING_TAB,
    ERRORS,
)
from vault.ingest.vcf_fields import parse_fixed
from vault.ingest.vcf_gt import missing_per_sample, parse_genotypes
from vault.ingest.vcf_scan import (
    alt_bounds,
    chrom_changes,
    find_line_ends,
    find_lines,
    gather_strings,
)

__all__ = [
    "ERRORS", "E_ALLELE", "E_ALT", "E_CHROM", "E_CHROM_COLON", "E_EMPTY", "E_FEW_SAMPLES",
    "E_FIELDS", "E_FORMAT_TWICE", "E_FORMAT_VALUES", "E_GT", "E_LONG_LINE", "E_MANY_SAMPLES",
    "E_NO_GT", "E_OK", "E_PLOIDY", "E_POS", "E_QUAL", "E_REF", "E_TRAILING_TAB", "ParsedChunk",
    "alt_bounds", "chrom_changes", "find_line_ends", "gather_strings", "missing_per_sample",
    "parse_chunk",
]


@dataclass
class ParsedChunk:
    """Result of parsing one chunk of complete VCF lines."""

    buf: np.ndarray
    line_starts: np.ndarray
    fs: np.ndarray
    pos: np.ndarray
    qual: np.ndarray
    qual_null: np.ndarray
    n_alt: np.ndarray
    err: np.ndarray
    err_col: np.ndarray
    row_start: np.ndarray
    packed: np.ndarray
    n_hap: np.ndarray
    n_half: np.ndarray
    no_gt: np.ndarray

    @property
    def n_lines(self) -> int:
        return int(self.line_starts.shape[0])

    def field(self, li: int, k: int) -> str:
        """Text of field k (0 = CHROM) of line li (only for messages and contig names)."""
        s = int(self.fs[li, k])
        e = int(self.fs[li, k + 1]) - 1
        return bytes(self.buf[s:e]).decode("utf-8", "replace")


def parse_chunk(buf: np.ndarray, n_samples: int) -> ParsedChunk:
    """Parse a chunk of complete data lines (``buf`` ends with ``\\n``)."""
    if isinstance(buf, OverlongLine):
        return _overlong(np.asarray(buf), n_samples)
    ends, guessed = find_lines(buf, n_samples)
    chunk = _parse_lines(buf, ends, guessed, n_samples)
    if chunk is None:  # a line end taken from a line's length was wrong: find them all
        ends = find_line_ends(buf)
        chunk = _parse_lines(buf, ends, np.zeros(ends.shape[0], np.bool_), n_samples)
        assert chunk is not None
    return chunk


def _parse_lines(buf: np.ndarray, ends: np.ndarray, guessed: np.ndarray,
                 n_samples: int) -> ParsedChunk | None:
    starts = np.empty_like(ends)
    if ends.shape[0]:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    fs, pos, qual, qual_null, n_alt, err, no_gt = parse_fixed(
        buf, starts, ends, n_samples > 0, max_line_bytes(n_samples))
    nrows_line = np.where(err == 0, np.maximum(n_alt, 1), 0).astype(np.int64)
    row_start = np.zeros(ends.shape[0] + 1, np.int64)
    np.cumsum(nrows_line, out=row_start[1:])
    n_rows = int(row_start[-1])
    packed, n_hap, n_half, err_col, wrong_guess = parse_genotypes(
        buf, ends, fs, n_alt, no_gt, row_start, err, n_samples, n_rows, guessed)
    if wrong_guess:
        return None
    return ParsedChunk(buf, starts, fs, pos, qual, qual_null, n_alt, err, err_col,
                       row_start, packed, n_hap, n_half, no_gt)


def _overlong(buf: np.ndarray, n_samples: int) -> ParsedChunk:
    """One line that was too long to be read (``buf`` holds its first bytes only)."""
    one = np.zeros(1, np.int64)
    return ParsedChunk(
        buf=buf, line_starts=one, fs=np.zeros((1, 10), np.int64), pos=one.copy(),
        qual=np.zeros(1, np.float32), qual_null=np.zeros(1, np.bool_),
        n_alt=np.zeros(1, np.int32), err=np.full(1, E_LONG_LINE, np.int8),
        err_col=np.full(1, -1, np.int32), row_start=np.zeros(2, np.int64),
        packed=np.zeros((0, (n_samples + 3) // 4), np.uint8), n_hap=np.zeros(1, np.int32),
        n_half=np.zeros(1, np.int32), no_gt=np.zeros(1, np.bool_))
