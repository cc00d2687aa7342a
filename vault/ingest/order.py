"""Record order and duplicate checks of ingest, carried from one parsed chunk to the next.

* Each contig forms one contiguous run of records; a contig that comes back after another
  one means the file is not sorted.
* When the header declares contigs (``##contig``), every CHROM must be one of them.
* Positions never decrease within a contig.
* No record repeats (POS, REF, ALT) of an earlier one, and no ALT allele is listed twice.

Each problem is an error naming the line, or, with ``--skip-invalid``, the record is dropped
(its ``ok`` flag cleared) and the reason counted.

A batch made of several files (:class:`BatchRegions`, shared by the files' checkers, which
see the files sorted by their first record) adds rules that are never skipped, because they
are about the files, not a record:

* files hold disjoint regions: a contig continued in a later file starts there after the
  last position of the earlier file (a record at the same position is an overlap);
* a contig is split only between files that follow one another: the files' concatenation
  must be a sorted VCF, so each (contig, position bin) partition of the batch is written once;
* a part added to an existing batch may only bring records to (contig, bin) partitions
  in which the batch has none yet: a partition is one file per batch, and an existing file
  is never rewritten (the ingest role cannot read it). Positions already stored are not
  in the plaintext manifest, so the check is by partition, not by position.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vault.ingest.vcfparse import ParsedChunk

SORT_HINT = "; sort the file first: `bcftools sort in.vcf.gz -Oz -o sorted.vcf.gz`"


@dataclass
class _Held:
    """The file that last brought records of a contig, and its last position there."""

    path: str
    last_pos: int


class BatchRegions:
    """Region checks across the files of one batch (see the module docstring).

    ``taken`` maps contig names to the position bins in which an existing batch already has
    records (only for a part added to that batch; ``batch`` names it in messages).
    """

    def __init__(self, bin_size: int, taken: dict[str, set[int]] | None = None,
                 batch: str | None = None) -> None:
        self.bin_size = bin_size
        self.taken = taken or {}
        self.batch = batch
        self.held: dict[str, _Held] = {}
        self.current: str | None = None  # the contig of the last records, any file

    def enter(self, path: str, chrom: str, line: int,
              invalid: Callable[[int, str], Exception]) -> _Held | None:
        """``path`` starts a run of ``chrom``: the earlier file it continues, if any."""
        held = self.held.get(chrom)
        if held is None or held.path == path:
            return None
        if self.current != chrom:
            raise invalid(line, f"records on contig {chrom[:60]!r} continue here after "
                                f"{held.path} went on to other contigs: a contig may be split "
                                "only between files whose regions follow one another (e.g. "
                                "one file per chromosome, or position ranges of one)")
        return held

    def first_pos(self, held: _Held, chrom: str, pos: int, line: int,
                  invalid: Callable[[int, str], Exception]) -> None:
        if pos <= held.last_pos:
            raise invalid(line, f"records on contig {chrom[:60]!r} from POS {pos} overlap "
                                f"{held.path}, whose records on it reach POS {held.last_pos}: "
                                "the files of one batch must hold disjoint regions (split by "
                                "POS, e.g. `bcftools view -t`; `-r` also keeps records that "
                                "only overlap the region)")

    def check_taken(self, chrom: str, pos: np.ndarray, lines: np.ndarray, first_line: int,
                    invalid: Callable[[int, str], Exception]) -> None:
        bins = self.taken.get(chrom)
        if not bins or pos.size == 0:
            return
        hit = np.flatnonzero(np.isin(pos // self.bin_size, np.fromiter(bins, np.int64)))
        if hit.size:
            j = int(hit[0])
            k = int(pos[j]) // self.bin_size
            lo, hi = k * self.bin_size, (k + 1) * self.bin_size - 1
            raise invalid(first_line + int(lines[j]),
                          f"batch {self.batch} already holds records on contig {chrom[:60]!r} "
                          f"in {max(lo, 1):,}-{hi:,} (its position bin {k}): a part added to "
                          f"a batch may only bring records to {self.bin_size:,}-bp bins in "
                          "which the batch has none yet; ingest files that share a bin "
                          "together in one command")

    def done(self, path: str, chrom: str, last_pos: int) -> None:
        self.held[chrom] = _Held(path, last_pos)
        self.current = chrom


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
                 invalid: Callable[[int, str], Exception], skipped: Counter[str],
                 regions: BatchRegions | None = None, path: str = "") -> None:
        self.declared = set(header_contigs)
        self.skip = skip_invalid
        self.invalid = invalid
        self.skipped = skipped
        self.state = _SortState()
        #: the batch's other files (None: a batch of one file, nothing to check across)
        self.regions = regions
        self.path = path
        self._continues: _Held | None = None  # the earlier file the current contig continues

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
        if self.regions is not None:
            self._continues = self.regions.enter(self.path, chrom, line, self.invalid)
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
        regions = self.regions
        if self._continues is not None:
            valid = np.flatnonzero(ok[lines])
            if valid.size:
                j = int(valid[0])
                assert state.contig is not None
                regions.first_pos(self._continues, state.contig,  # type: ignore[union-attr]
                                  int(pos[j]), first_line + int(lines[j]), self.invalid)
                self._continues = None
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
            if regions is not None:
                assert state.contig is not None
                regions.check_taken(state.contig, pos[valid], lines[valid], first_line,
                                    self.invalid)
                regions.done(self.path, state.contig, state.last_pos)

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
