"""Record order and duplicate checks of ingest, carried from one parsed chunk to the next.

* Each contig forms one contiguous run of records; a contig that comes back after another
  one means the file is not sorted.
* When the header declares contigs (``##contig``), every CHROM must be one of them.
* Positions never decrease within a contig.
* No record repeats (POS, REF, ALT) of an earlier one, and no ALT allele is listed twice.

Each problem is an error naming the line, or, with ``--skip-invalid``, the record is dropped
(its ``ok`` flag cleared) and the reason counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vault.ingest.vcfparse import ParsedChunk

SORT_HINT = "; sort the file first: `bcftools sort in.vcf.gz -Oz -o sorted.vcf.gz`"


@dataclass
class _SortState:
    """What the order and duplicate checks carry from one chunk to the next."""

    contig: str | None = None
    last_pos: int = -1
    at_last_pos: set[tuple[str, str]] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)


class OrderChecker:
    """Contig, sort-order and duplicate checks over the runs of valid lines of each chunk.

    ``invalid(line, reason)`` builds the exception to raise (file and line); ``skipped``
    counts the dropped records per reason when ``skip_invalid`` is set.
    """

    def __init__(self, header_contigs: list[str], skip_invalid: bool,
                 invalid: Callable[[int, str], Exception], skipped: Counter[str]) -> None:
        self.declared = set(header_contigs)
        self.skip = skip_invalid
        self.invalid = invalid
        self.skipped = skipped
        self.state = _SortState()

    def enter_contig(self, chrom: str, line: int, lines: np.ndarray, ok: np.ndarray) -> bool:
        """A run of valid ``lines`` (first one on file line ``line``) with CHROM ``chrom``.

        Returns False if the run is refused (then skipped: ``ok`` cleared, reason counted).
        """
        state = self.state
        if chrom == state.contig:
            return True
        reason = None
        if self.declared and chrom not in self.declared:
            reason = (f"contig {chrom[:60]!r} is not declared in a ##contig header line",
                      "undeclared_contig")
        elif chrom in state.finished:
            reason = (f"records are not sorted: contig {chrom[:60]!r} appears again after "
                      f"other contigs{SORT_HINT}", "unsorted")
        if reason is not None:
            if not self.skip:
                raise self.invalid(line, reason[0])
            self.skipped[reason[1]] += lines.size
            ok[lines] = False
            return False
        if state.contig is not None:
            state.finished.add(state.contig)
        state.contig = chrom
        state.last_pos = -1
        state.at_last_pos = set()
        return True

    def check(self, chunk: ParsedChunk, lines: np.ndarray, first_line: int,
              ok: np.ndarray) -> None:
        """Positions must not decrease within a contig; no (POS, REF, ALT) twice."""
        if lines.size == 0:
            return
        state = self.state
        pos = chunk.pos[lines]
        prev = np.empty_like(pos)
        prev[0] = state.last_pos
        if pos.size > 1:
            prev[1:] = np.maximum.accumulate(np.maximum(pos[:-1], state.last_pos))
        n_alt = chunk.n_alt[lines]
        suspicious = np.flatnonzero((pos <= prev) | (n_alt > 1))

        def reject(li: int, reason: str, key: str) -> None:
            if not self.skip:
                raise self.invalid(first_line + li, reason)
            self.skipped[key] += 1
            ok[li] = False

        for j in suspicious.tolist():
            li = int(lines[j])
            p = int(pos[j])
            if p < prev[j]:
                reject(li, f"records are not sorted: POS {p} comes after POS {int(prev[j])} "
                           f"on the same contig{SORT_HINT}", "unsorted")
                continue
            mine = _alleles(chunk, li)
            if len(mine) != max(int(n_alt[j]), 1):
                reject(li, "an ALT allele is listed twice", "duplicate")
                continue
            earlier = self._alleles_before(chunk, lines, pos, j, ok)
            if mine & earlier:
                reject(li, f"duplicate record: POS {p} with the same REF and ALT as an "
                           "earlier record", "duplicate")
        valid = np.flatnonzero(ok[lines])
        if valid.size:
            j = int(valid[-1])
            state.at_last_pos = self._alleles_before(chunk, lines, pos, j, ok) | \
                _alleles(chunk, int(lines[j]))
            state.last_pos = int(pos[j])

    def _alleles_before(self, chunk: ParsedChunk, lines: np.ndarray, pos: np.ndarray,
                        j: int, ok: np.ndarray) -> set[tuple[str, str]]:
        """(REF, ALT) pairs of the valid records before line j at the same position."""
        p = int(pos[j])
        out: set[tuple[str, str]] = set()
        k = j - 1
        while k >= 0 and int(pos[k]) == p:
            if ok[int(lines[k])]:
                out |= _alleles(chunk, int(lines[k]))
            k -= 1
        if k < 0 and p == self.state.last_pos:
            out |= self.state.at_last_pos
        return out


def _alleles(chunk: ParsedChunk, li: int) -> set[tuple[str, str]]:
    ref = chunk.field(li, 3)
    alts = chunk.field(li, 4).split(",")
    return {(ref, a) for a in alts}
