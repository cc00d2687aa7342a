"""Native BCF2 reader: the header, then records decoded into parsed chunks (no htslib).

The BCF stream (BGZF, plain gzip or uncompressed; BCF 2.1 or 2.2) is inflated like a VCF
(source.py), then:

* the header text (``l_text`` checked against GenoVault's header limit before it is read) is
  returned as lines, so it is validated like a VCF header (header.parse_header); its
  ``##contig`` lines and its ``##FILTER/INFO/FORMAT`` IDs make the two dictionaries that
  records refer to, numbered in order of appearance or by their ``IDX=`` (``PASS`` is 0);
* records are framed by their declared lengths and decoded by bcf_decode (numba): the shared
  part becomes the text of the eight fixed columns (CHROM..INFO, with INFO rendered as VCF
  text), checked by the same kernel as a VCF line; GT is packed straight from the typed
  vectors. Each chunk is a ``vcfparse.ParsedChunk``, so the pipeline, its order checks and
  its messages are those of VCF, with "record N" instead of a line number.

A record longer than the line limit (``limits.max_line_bytes``) is never assembled: it stands
as one ``line_too_long`` record and its bytes are skipped as they stream past. A record
whose framing or dictionary references are broken, or a stream that ends inside a record,
is an error naming the record (never skipped: what follows cannot be trusted).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vault.errors import InvalidInput
from vault.ingest import bcf_decode as bd
from vault.ingest import vcfparse as vp
from vault.ingest.header import header_text
from vault.ingest.limits import (
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    max_line_bytes,
    overlong_line,
)
from vault.ingest.vcf_fields import parse_fixed

BCF_MAGIC = b"BCF\x02"
#: records decoded per chunk at most (a chunk of inflated data holds a few thousand)
MAX_RECORDS = 1 << 16
_KEYS = ("##FILTER=<", "##INFO=<", "##FORMAT=<")
_ATTR = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^,>]*)')

HINT = "re-create it with `bcftools view -Ob`"


def _attrs(line: str) -> dict[str, str]:
    """The key=value pairs of a structured header line (quoted values kept whole)."""
    body = line[line.index("<") + 1:]
    return {m.group(1): m.group(2) for m in _ATTR.finditer(body)}


class _Dictionary:
    """IDs by index: in order of appearance, or at their IDX=."""

    def __init__(self, path: str, n_lines: int, implicit: tuple[str, ...] = ()) -> None:
        self.path = path
        self.limit = n_lines + len(implicit)
        self.names: dict[int, str] = dict(enumerate(implicit))
        self.index: dict[str, int] = {n: i for i, n in enumerate(implicit)}

    def add(self, ident: str, idx: str | None, line: int) -> None:
        if idx is None:
            if ident not in self.index:
                i = max(self.names, default=-1) + 1
                self.names[i] = ident
                self.index[ident] = i
            return
        if not idx.isdigit() or int(idx) > self.limit:
            raise InvalidInput(self.path, None, f"BCF header line {line}: IDX={idx[:20]!r} is "
                                                "not an index of the header's dictionary: "
                                                f"the file is malformed; {HINT}")
        i = int(idx)
        if self.names.get(i, ident) != ident:
            raise InvalidInput(self.path, None, f"BCF header line {line}: IDX={i} is given to "
                                                f"{self.names[i][:60]!r} and {ident[:60]!r}: "
                                                f"the file is malformed; {HINT}")
        self.names[i] = ident
        self.index[ident] = i

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(UTF-8 bytes of every name, offsets: name i is data[off[i]:off[i+1]], empty if
        index i is not defined)."""
        n = max(self.names, default=-1) + 1
        off = np.zeros(n + 1, np.int64)
        parts = []
        for i in range(n):
            name = self.names.get(i, "").encode()
            parts.append(name)
            off[i + 1] = off[i] + len(name)
        return np.frombuffer(b"".join(parts) or b"\0", np.uint8)[:off[-1]].copy(), off


class BcfReader:
    """``read_header()`` then ``data_chunks()``, like source.LineChunker."""

    def __init__(self, chunks: Iterator[bytes | np.ndarray], path: Path) -> None:
        self._chunks = (np.frombuffer(c, np.uint8) for c in chunks)
        self._path = path
        self._rest = np.zeros(0, np.uint8)
        self.header_lines: list[str] = []
        self.max_line = max_line_bytes(0)
        self.n_samples = 0
        self._gt_key = -1
        self._dicts: tuple[np.ndarray, ...] = ()

    def _error(self, reason: str) -> InvalidInput:
        return InvalidInput(str(self._path), None, reason)

    def _read(self, n: int, what: str) -> np.ndarray:
        """The next n bytes of the stream (n is bounded by the header limit)."""
        parts = [self._rest]
        have = self._rest.shape[0]
        while have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise self._error(f"truncated BCF file (it ends inside the {what}): re-copy "
                                  "the file")
            parts.append(chunk)
            have += chunk.shape[0]
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._rest = data[n:]
        return data[:n]

    def read_header(self) -> list[str]:
        head = bytes(self._read(9, "header"))
        if head[:4] != BCF_MAGIC:
            raise self._error("not a BCF2 file (no BCF\\2 magic): " + HINT)
        if head[4] not in (1, 2):
            raise self._error(f"BCF version 2.{head[4]} is not supported (2.1 and 2.2 are): "
                              + HINT)
        size = struct.unpack_from("<I", head, 5)[0]
        if size > MAX_HEADER_BYTES:
            raise self._error(f"the BCF header declares {size} bytes, more than GenoVault's "
                              f"limit of {MAX_HEADER_BYTES >> 20} MiB (see docs/format.md): "
                              "the file is malformed")
        text = bytes(self._read(size, "header")).split(b"\0", 1)[0]
        lines = [ln.rstrip("\r") for ln in header_text(text, str(self._path), 1).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        if len(lines) > MAX_HEADER_LINES:
            raise InvalidInput(str(self._path), MAX_HEADER_LINES,
                               f"more than {MAX_HEADER_LINES:,} header lines (GenoVault's "
                               "limit, see docs/format.md): the file is malformed")
        self.header_lines = lines
        self._dictionaries(lines)
        return lines

    def _dictionaries(self, lines: list[str]) -> None:
        path = str(self._path)
        strings = _Dictionary(path, len(lines), ("PASS",))
        contigs = _Dictionary(path, len(lines))
        for i, line in enumerate(lines, start=1):
            if line.startswith(_KEYS) or line.startswith("##contig=<"):
                attrs = _attrs(line)
                ident = attrs.get("ID")
                if not ident:
                    continue  # parse_header refuses the line
                (contigs if line.startswith("##contig") else strings).add(
                    ident, attrs.get("IDX"), i)
        last = lines[-1] if lines else ""
        self.n_samples = max(0, last.count("\t") - 8) if last.startswith("#CHROM") else 0
        self.max_line = max_line_bytes(self.n_samples)
        self._gt_key = strings.index.get("GT", -1)
        self._dicts = (*contigs.arrays(), *strings.arrays())

    # -- records -------------------------------------------------------------------------
    def data_chunks(self) -> Iterator[vp.ParsedChunk]:
        """Parsed chunks of records, in order (an overlong record is a chunk of its own)."""
        limit = self.max_line
        record = 1  # number of the next record
        carry = np.zeros(0, np.uint8)  # the start of a record that straddles chunks
        drop = 0  # bytes of an overlong record still to skip

        def pieces() -> Iterator[np.ndarray]:
            yield self._rest
            yield from self._chunks

        for chunk in pieces():
            pos = 0
            if drop:
                pos = min(drop, chunk.shape[0])
                drop -= pos
            while carry.shape[0] and pos < chunk.shape[0]:
                # complete the straddling record: its 8 length bytes first, then the rest
                want = 8 if carry.shape[0] < 8 else _total(carry)
                take = min(want - carry.shape[0], chunk.shape[0] - pos)
                carry = np.concatenate([carry, chunk[pos:pos + take]])
                pos += take
                if carry.shape[0] < 8:
                    break
                total = _total(carry)
                if total - 8 > limit:
                    yield self._overlong()
                    record += 1
                    drop = total - carry.shape[0]
                    carry = carry[:0]
                    skip = min(drop, chunk.shape[0] - pos)
                    pos += skip
                    drop -= skip
                elif carry.shape[0] == total:
                    yield from self._decode(carry, np.zeros(1, np.int64), record)
                    record += 1
                    carry = carry[:0]
            if carry.shape[0] or pos >= chunk.shape[0]:
                continue
            while True:
                offs, end, over = bd.frame(chunk, pos, limit, MAX_RECORDS)
                if offs.shape[0]:
                    yield from self._decode(chunk, offs, record)
                    record += offs.shape[0]
                pos = end
                if over:
                    yield self._overlong()
                    record += 1
                    skip = min(over, chunk.shape[0] - pos)
                    pos += skip
                    drop = over - skip
                    continue
                if offs.shape[0] < MAX_RECORDS:
                    break
            if not drop and pos < chunk.shape[0]:
                carry = chunk[pos:].copy()
        if carry.shape[0] or drop:  # (an overlong record being dropped was counted)
            raise self._error(f"record {record - 1 if drop else record}: truncated BCF "
                              "record (the file ends inside it): re-copy the file")

    def _overlong(self) -> vp.ParsedChunk:
        return vp.parse_chunk(overlong_line(b""), self.n_samples)

    def _decode(self, buf: np.ndarray, offs: np.ndarray, first: int) -> Iterator[vp.ParsedChunk]:
        """The records at ``offs`` (numbered from ``first``) as one parsed chunk; a record
        that cannot be decoded ends the chunk before it and is then an error."""
        chunk, bad, code = self._decode_all(buf, offs)
        if bad < 0:
            yield chunk
            return
        if bad > 0:
            good, _, _ = self._decode_all(buf, offs[:bad])
            yield good
        raise self._error(f"record {first + bad}: malformed BCF record ({bd.FATAL[code]}): "
                          f"the file is damaged or not valid BCF; {HINT}")

    def _decode_all(self, buf: np.ndarray,
                    offs: np.ndarray) -> tuple[vp.ParsedChunk, int, int]:
        n = self.n_samples
        contigs, contig_off, names, name_off = self._dicts
        text, starts, ends, qual_bits, ip, ie, n_fmt, n_sample, fatal = bd.render_records(
            buf, offs, contigs, contig_off, names, name_off)
        fs, pos, qual, qual_null, n_alt, err, _ = parse_fixed(text, starts, ends, False,
                                                              self.max_line)
        # QUAL exactly as stored (the text only served the checks and messages)
        exact = (err == 0) & (qual_bits != bd.FLOAT_MISSING)
        qual = np.where(exact, qual_bits.view(np.float32), qual).astype(np.float32)
        row_start = np.zeros(offs.shape[0] + 1, np.int64)
        np.cumsum(np.where(err == 0, np.maximum(n_alt, 1), 0), out=row_start[1:])
        packed, n_hap, n_half, err_col, no_gt, fatal_gt = bd.decode_genotypes(
            buf, ip, ie, n_fmt, n_sample, self._gt_key, name_off, n_alt, err, row_start, n,
            int(row_start[-1]))
        bad = np.flatnonzero((fatal != 0) | (fatal_gt != 0))
        first_bad = int(bad[0]) if bad.size else -1
        code = int(fatal[first_bad] or fatal_gt[first_bad]) if bad.size else 0
        chunk = vp.ParsedChunk(text, starts, fs, pos, qual, qual_null, n_alt, err, err_col,
                               row_start, packed, n_hap, n_half, no_gt)
        return chunk, first_bad, code


def _total(head: np.ndarray) -> int:
    """8 + l_shared + l_indiv of the record whose first 8 bytes are ``head[:8]``."""
    l_shared, l_indiv = struct.unpack_from("<II", bytes(head[:8]))
    return 8 + int(l_shared) + int(l_indiv)
