"""Reading VCF/BCF sources as header text + chunks of complete data lines.

* BGZF (``.vcf.gz`` written by bgzip/htslib): the compressed file is read in slices, the
  BGZF blocks are found from their headers and inflated with libdeflate on a thread pool
  (libdeflate releases the GIL, so both cores inflate), and each chunk is verified against
  the block's CRC32.
* plain gzip: streamed through zlib.
* uncompressed VCF: read as is.
* BCF (BGZF, gzip or uncompressed): inflated the same way, then decoded natively by
  vault.ingest.bcf (``TextSource.chunker()`` picks the reader).

Every text chunk ends at a line boundary. Lines are never reordered.

Memory stays bounded whatever the input (``limits.py``): a BGZF block that declares more
than 64 KiB is refused, each inflate step is capped, and so are the header and the length
of one data line (of one BCF record).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import queue
import re
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import deflate
import numpy as np

from kernels.jit import jit
from vault.errors import InvalidInput
from vault.ingest.header import header_text
from vault.ingest.limits import (
    BGZF_MAX_BLOCK,
    BGZF_MAX_INFLATE_PER_TASK,
    GZIP_MAX_STEP,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    max_line_bytes,
    overlong_line,
)

if TYPE_CHECKING:
    from vault.ingest.bcf import BcfReader

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
GZIP_MAGIC = b"\x1f\x8b"
BCF_MAGIC = b"BCF\x02"
#: the empty block that bgzip and htslib end every BGZF file with (SAM/BAM spec §4.1.2); a
#: file without it was cut short, maybe exactly at a block boundary (htslib writes whole
#: records per block, so the records before the cut still decode)
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
CHUNK_COMPRESSED = 2 << 20  # bytes of BGZF read per slice (~60 MB of VCF text)
CHUNK_TEXT = 64 << 20
INFLATE_THREADS = 2


def sniff(path: Path) -> str:
    """'bgzf', 'gzip', 'bcf' (BGZF-compressed or not) or 'text'."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if len(head) == 18 and head[:4] == BGZF_MAGIC and head[12:14] == b"BC":
        with open(path, "rb") as fh:
            first = _inflate_block(fh.read(struct.unpack_from("<H", head, 16)[0] + 1), path, 0)
        return "bcf" if first[:4] == BCF_MAGIC else "bgzf"
    if head[:2] == GZIP_MAGIC:
        with open(path, "rb") as fh:
            try:
                first = zlib.decompressobj(31).decompress(fh.read(1 << 16), 8)
            except zlib.error as exc:
                raise InvalidInput(str(path), None, f"corrupt gzip data ({exc}): the file is "
                                   "damaged or not gzip") from None
        return "bcf" if first[:4] == BCF_MAGIC else "gzip"
    if head[:4] == BCF_MAGIC:
        return "bcf"
    return "text"


def _block_too_large(path: Path, offset: int, isize: int) -> InvalidInput:
    return InvalidInput(str(path), None,
                        f"BGZF block at byte offset {offset} declares {isize} inflated bytes; "
                        f"the BGZF format allows at most {BGZF_MAX_BLOCK} (the file is "
                        "malformed or a decompression bomb); re-compress it with bgzip")


def _inflate_block(block: bytes | memoryview, path: Path, offset: int) -> bytes | bytearray:
    """Inflate one BGZF block (header + deflate data + CRC32 + ISIZE), checking its CRC.

    ``offset`` (the block's byte offset in the file) is only for messages.
    """
    xlen = struct.unpack_from("<H", block, 10)[0]
    crc, isize = struct.unpack_from("<II", block, len(block) - 8)
    if isize > BGZF_MAX_BLOCK:
        raise _block_too_large(path, offset, isize)
    try:
        # libdeflate never writes more than isize bytes
        data = deflate.deflate_decompress(block[12 + xlen:-8], isize) if isize else b""
    except deflate.DeflateError as exc:
        raise InvalidInput(str(path), None, f"corrupt BGZF block at byte offset {offset} "
                                            "(deflate data does not decode): the file is "
                                            "damaged; re-copy it") from exc
    if deflate.crc32(data) != crc:
        raise InvalidInput(str(path), None, f"corrupt BGZF block at byte offset {offset} "
                                            "(CRC32 mismatch): the file is damaged or "
                                            "truncated; re-copy it")
    return data


def _container(path: Path) -> str:
    """How a file is compressed: 'bgzf', 'gzip' or 'plain'."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if len(head) == 18 and head[:4] == BGZF_MAGIC and head[12:14] == b"BC":
        return "bgzf"
    return "gzip" if head[:2] == GZIP_MAGIC else "plain"


@dataclass
class TextSource:
    """A VCF as a stream of byte chunks, plus progress in compressed bytes."""

    path: Path
    kind: str
    size: int = 0
    consumed: int = 0
    _progress: list[Callable[[int], None]] = field(default_factory=list)

    def on_progress(self, fn: Callable[[int], None]) -> None:
        self._progress.append(fn)

    def _advance(self, n: int) -> None:
        self.consumed += n
        for fn in self._progress:
            fn(n)

    def raw_chunks(self) -> Iterator[bytes | np.ndarray]:
        """Decompressed bytes (bytes or uint8 arrays) in order, arbitrary boundaries."""
        self.size = os.path.getsize(self.path)
        container = self.kind if self.kind != "bcf" else _container(self.path)
        if container == "bgzf":
            yield from self._bgzf_chunks()
        elif container == "gzip":
            yield from self._gzip_chunks()
        else:
            with open(self.path, "rb") as fh:
                while block := fh.read(CHUNK_TEXT):
                    self._advance(len(block))
                    yield block

    def _bgzf_chunks(self) -> Iterator[bytes | np.ndarray]:
        path = self.path
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - len(BGZF_EOF)))
            if fh.read() != BGZF_EOF:
                raise InvalidInput(str(path), None, "truncated BGZF file (no BGZF end-of-file "
                                                    "marker: it was cut short, maybe at a "
                                                    "block boundary): re-copy the file")
        max_blocks = BGZF_MAX_INFLATE_PER_TASK // BGZF_MAX_BLOCK
        pool = ThreadPoolExecutor(max_workers=INFLATE_THREADS)
        finished = False
        try:
            with open(path, "rb") as fh:
                data = b""  # compressed bytes not yet handed to a task
                base = 0  # file offset of data[0]
                ahead: deque[tuple[Future[bytes | np.ndarray], int]] = deque()
                eof = False
                while True:
                    while len(ahead) < INFLATE_THREADS:  # keep both cores inflating ahead
                        # at most max_blocks blocks per task: 64 KiB blocks that compress
                        # 1000:1 would otherwise inflate a 2 MiB slice to 2 GB
                        offsets, used = _split_bgzf(data, path, base, eof, max_blocks)
                        if offsets.size > 1:
                            ahead.append((pool.submit(_inflate_task, data, offsets, path,
                                                      base), used))
                            data = data[used:]
                            base += used
                        elif eof:
                            break
                        else:
                            raw = fh.read(CHUNK_COMPRESSED)
                            eof = not raw
                            data += raw
                    if not ahead:
                        break
                    fut, used = ahead.popleft()
                    self._advance(used)
                    yield fut.result()
            finished = True
        finally:
            # An abandoned generator (its reader raised on bad input) is closed by the garbage
            # collector, which may run inside another thread's start-up; joining the pool's
            # threads there deadlocks on threading's own lock. So wait only when done.
            pool.shutdown(wait=finished, cancel_futures=not finished)

    def _gzip_chunks(self) -> Iterator[bytes]:
        d = zlib.decompressobj(47)
        pending = b""  # compressed input not yet given to zlib
        with open(self.path, "rb") as fh:
            while True:
                try:
                    # never more than GZIP_MAX_STEP bytes out of one step (gzip bombs)
                    out = d.decompress(pending, GZIP_MAX_STEP)
                except zlib.error as exc:
                    raise InvalidInput(str(self.path), None, f"corrupt gzip data ({exc}): the "
                                                             "file is damaged; re-copy it") \
                        from exc
                if d.eof:
                    pending = d.unused_data
                    if pending:  # concatenated gzip members
                        d = zlib.decompressobj(47)
                else:
                    pending = d.unconsumed_tail
                if out:
                    yield out
                    continue
                if pending:
                    continue
                block = fh.read(CHUNK_COMPRESSED)
                if not block:
                    break
                self._advance(len(block))
                if d.eof:  # the next member starts at this block
                    d = zlib.decompressobj(47)
                pending = block
            if not d.eof:
                raise InvalidInput(str(self.path), None,
                                   "truncated gzip file: re-copy the file")

    def chunker(self) -> LineChunker | BcfReader:
        """What turns this source into parsed records: a LineChunker over the text, or the
        native BCF reader (vault.ingest.bcf), each with ``read_header()`` and
        ``data_chunks()``."""
        if self.kind == "bcf":
            from vault.ingest.bcf import BcfReader

            return BcfReader(self.raw_chunks(), self.path)
        return LineChunker(self.raw_chunks(), self.path)


@jit()
def _bgzf_offsets(raw: np.ndarray, max_blocks: int) -> tuple[np.ndarray, int, int, int]:
    """Offsets of the first whole BGZF blocks in ``raw`` (at most ``max_blocks``), plus the
    end of the last one.

    Returns (offsets, bytes used, offset of the first bad block or -1, its problem: 1 not a
    BGZF block header, 2 ISIZE over 64 KiB, 3 BSIZE too small for a block).
    """
    n = raw.shape[0]
    offs = np.empty(min(n // 28, max_blocks) + 2, np.int64)
    m = 0
    p = 0
    while p + 18 <= n and m < max_blocks:
        if not (raw[p] == 31 and raw[p + 1] == 139 and raw[p + 2] == 8 and raw[p + 3] == 4
                and raw[p + 12] == 66 and raw[p + 13] == 67):
            return offs[:m], p, p, 1
        bsize = (raw[p + 16] | (np.int64(raw[p + 17]) << 8)) + 1
        if bsize < 26:
            return offs[:m], p, p, 3
        if p + bsize > n:
            break
        e = p + bsize
        isize = (np.int64(raw[e - 4]) | (np.int64(raw[e - 3]) << 8)
                 | (np.int64(raw[e - 2]) << 16) | (np.int64(raw[e - 1]) << 24))
        if isize > 65536:
            return offs[:m], p, p, 2
        offs[m] = p
        m += 1
        p += bsize
    offs[m] = p
    return offs[:m + 1], p, -1, 0


def _split_bgzf(raw: bytes, path: Path, base: int, final: bool,
                max_blocks: int) -> tuple[np.ndarray, int]:
    """Offsets of the first whole BGZF blocks in ``raw`` (file offset ``base``); returns
    (offsets, bytes used)."""
    offs, used, bad, why = _bgzf_offsets(np.frombuffer(raw, np.uint8), max_blocks)
    if bad >= 0:
        if why == 2:
            isize = struct.unpack_from("<I", raw, bad + struct.unpack_from("<H", raw, bad + 16)[0]
                                       - 3)[0]
            raise _block_too_large(path, base + bad, isize)
        raise InvalidInput(str(path), None, f"not a valid BGZF block at byte offset "
                                            f"{base + bad}: the file is corrupt or not "
                                            "bgzip-compressed")
    if final and offs.size <= max_blocks and used != len(raw):
        raise InvalidInput(str(path), None, "truncated BGZF file (incomplete last block): "
                                            "re-copy the file")
    return offs, used


def _inflate_many(raw: bytes, offsets: np.ndarray, path: Path, base: int) -> bytes:
    """Inflate whole BGZF blocks block by block through the ``deflate`` package (the path
    taken when libdeflate's C functions cannot be reached directly)."""
    mv = memoryview(raw)
    bounds = offsets.tolist()
    return b"".join([_inflate_block(mv[a:b], path, base + a)
                     for a, b in itertools.pairwise(bounds)])


@functools.cache
def _libdeflate() -> tuple[Any, Any, queue.SimpleQueue[int]] | None:
    """libdeflate's decompress and crc32 C functions (from the ``deflate`` package's own
    extension, which exports them), and a pool of decompressor objects; None if unavailable."""
    try:
        from deflate import _deflate

        lib = ctypes.CDLL(_deflate.__file__)
        decompress = lib.libdeflate_deflate_decompress
        crc32 = lib.libdeflate_crc32
        alloc = lib.libdeflate_alloc_decompressor
    except (ImportError, OSError, AttributeError):
        return None
    decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p]
    decompress.restype = ctypes.c_int
    crc32.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
    crc32.restype = ctypes.c_uint32
    alloc.argtypes = []
    alloc.restype = ctypes.c_void_p
    pool: queue.SimpleQueue[int] = queue.SimpleQueue()
    for _ in range(INFLATE_THREADS):
        dec = alloc()
        if not dec:
            return None
        pool.put(dec)
    return decompress, crc32, pool


@jit()
def _inflate_into(decompress: Any, crc32: Any, dec: int, raw: np.ndarray,
                  offsets: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Inflate the whole BGZF blocks raw[offsets[k]:offsets[k+1]] into one array, checking
    each block's CRC32. Returns (data, index of the first bad block or -1, 1 deflate data
    does not decode / 2 CRC mismatch). Blocks were checked by ``_bgzf_offsets`` (ISIZE)."""
    n = offsets.shape[0] - 1
    total = np.int64(0)
    for k in range(n):
        e = offsets[k + 1]
        total += (np.int64(raw[e - 4]) | (np.int64(raw[e - 3]) << 8)
                  | (np.int64(raw[e - 2]) << 16) | (np.int64(raw[e - 1]) << 24))
    out = np.empty(total, np.uint8)
    src = raw.ctypes.data
    dst = out.ctypes.data
    o = np.int64(0)
    for k in range(n):
        a = offsets[k]
        e = offsets[k + 1]
        xlen = np.int64(raw[a + 10]) | (np.int64(raw[a + 11]) << 8)
        crc = (np.uint32(raw[e - 8]) | (np.uint32(raw[e - 7]) << 8)
               | (np.uint32(raw[e - 6]) << 16) | (np.uint32(raw[e - 5]) << 24))
        isize = (np.int64(raw[e - 4]) | (np.int64(raw[e - 3]) << 8)
                 | (np.int64(raw[e - 2]) << 16) | (np.int64(raw[e - 1]) << 24))
        start = a + 12 + xlen
        if e - 8 < start:
            return out, k, 1
        if isize > 0 and decompress(dec, src + start, e - 8 - start, dst + o, isize, 0) != 0:
            return out, k, 1  # libdeflate: bad data, or not exactly ISIZE bytes
        if crc32(np.uint32(0), dst + o, isize) != crc:
            return out, k, 2
        o += isize
    return out, -1, 0


def _inflate_task(raw: bytes, offsets: np.ndarray, path: Path,
                  base: int) -> bytes | np.ndarray:
    """Inflate whole BGZF blocks into one buffer (libdeflate straight into the array, the GIL
    released; else block by block)."""
    fns = _libdeflate()
    if fns is None:
        return _inflate_many(raw, offsets, path, base)
    decompress, crc32, pool = fns
    dec = pool.get()
    try:
        out, bad, why = _inflate_into(decompress, crc32, dec, np.frombuffer(raw, np.uint8),
                                      offsets)
    finally:
        pool.put(dec)
    if bad >= 0:
        offset = base + int(offsets[bad])
        what = "deflate data does not decode" if why == 1 else "CRC32 mismatch"
        hint = "damaged; re-copy it" if why == 1 else "damaged or truncated; re-copy it"
        raise InvalidInput(str(path), None, f"corrupt BGZF block at byte offset {offset} "
                                            f"({what}): the file is {hint}")
    return out


@jit()
def _find_nl(buf: np.ndarray, start: int) -> int:
    """Offset of the first '\\n' at or after ``start``, or -1."""
    for i in range(start, buf.shape[0]):
        if buf[i] == 10:
            return i
    return -1


@jit()
def _rfind_nl(buf: np.ndarray, start: int) -> int:
    """Offset of the last '\\n' at or after ``start``, or -1."""
    for i in range(buf.shape[0] - 1, start - 1, -1):
        if buf[i] == 10:
            return i
    return -1


_NEWLINE = re.compile(b"\n")


def _find_nl_re(buf: np.ndarray, start: int) -> int:
    """``_find_nl`` without numba (a regular expression over the array's memory, no copy),
    for header lines: the header (the sample ids the registration needs) is read before any
    kernel has run, so numba's start-up (~0.4 s of CPU) comes later, beside the sample
    registration, instead of before it."""
    found = _NEWLINE.search(memoryview(buf.data), start)
    return found.start() if found else -1


_EMPTY = np.zeros(0, np.uint8)

#: the reason a file whose last line has no newline is refused (VCF lines end with one)
UNTERMINATED = ("the last line has no newline at its end: the file may have been cut "
                "mid-line (a cut '0/1' would read as a haploid '0'), so it is refused; "
                "if you have checked that the file is complete, add the final newline "
                "(`echo >> file.vcf`) or compress it with bgzip")


class LineChunker:
    """Turns decompressed chunks (bytes or uint8 arrays) into (header lines, data chunks of
    whole lines).

    Data chunks are zero-copy views of the decompressed chunks; only the one line that
    straddles two chunks is copied (and yielded as a chunk of its own, in order). The header
    is limited to ``MAX_HEADER_BYTES`` and ``MAX_HEADER_LINES``; a data line longer than
    ``max_line_bytes(samples)`` is never assembled: an ``OverlongLine`` stands in for it and
    its bytes are dropped as they stream past.
    """

    def __init__(self, chunks: Iterator[bytes | np.ndarray], path: Path) -> None:
        self._chunks = (np.frombuffer(c, np.uint8) for c in chunks)
        self._path = path
        self.header_lines: list[str] = []
        self._rest = _EMPTY
        self._rest_pos = 0
        self.max_line = max_line_bytes(0)
        #: set if the file's last line has no newline: just before that line is yielded, or
        #: at the end if it was an overlong line (already yielded as ``OverlongLine``)
        self.unterminated = False

    def _header_limit(self, size: int) -> None:
        lines = self.header_lines
        if len(lines) > MAX_HEADER_LINES:
            raise InvalidInput(str(self._path), len(lines),
                               f"more than {MAX_HEADER_LINES:,} header lines (GenoVault's "
                               "limit, see docs/format.md): the file is malformed")
        if size > MAX_HEADER_BYTES:
            raise InvalidInput(str(self._path), len(lines) + 1,
                               f"the header is larger than {MAX_HEADER_BYTES >> 20} MiB "
                               "(GenoVault's limit, see docs/format.md): the file is "
                               "malformed (a missing newline?)")

    def read_header(self) -> list[str]:
        buf = _EMPTY
        pos = 0
        done = 0  # bytes of the complete header lines
        for chunk in self._chunks:
            buf = np.concatenate([buf[pos:], chunk]) if pos < buf.shape[0] else chunk
            pos = 0
            while pos < buf.shape[0]:
                if buf[pos] != 35:  # '#'
                    self._rest, self._rest_pos = buf, pos
                    return self._end_header()
                nl = _find_nl_re(buf, pos)
                if nl < 0:
                    break
                self.header_lines.append(header_text(bytes(buf[pos:nl]).rstrip(b"\r"),
                                                     str(self._path),
                                                     len(self.header_lines) + 1))
                done += nl + 1 - pos
                pos = nl + 1
                if len(self.header_lines) > MAX_HEADER_LINES:
                    self._header_limit(done)
            self._header_limit(done + buf.shape[0] - pos)
        self._rest, self._rest_pos = buf, pos
        return self._end_header()

    def _end_header(self) -> list[str]:
        last = self.header_lines[-1] if self.header_lines else ""
        n_samples = max(0, last.count("\t") - 8) if last.startswith("#CHROM") else 0
        self.max_line = max_line_bytes(n_samples)
        return self.header_lines

    def data_chunks(self) -> Iterator[np.ndarray]:
        """Chunks of complete data lines as uint8 arrays (each ends with '\\n'), in order."""
        first = (self._rest, self._rest_pos)
        self._rest = _EMPTY
        limit = self.max_line
        tail: list[np.ndarray] = []  # pieces of the line that straddles chunks
        tail_len = 0
        dropping = False  # inside an overlong line, after its OverlongLine was yielded

        def pieces() -> Iterator[tuple[np.ndarray, int]]:
            yield first
            for chunk in self._chunks:
                yield chunk, 0

        def prefix() -> bytes:
            return bytes(tail[0][:200]) if tail else b""

        for chunk, start in pieces():
            size = chunk.shape[0]
            if start >= size:
                continue
            nl = _find_nl(chunk, start)
            if dropping:
                if nl < 0:
                    continue
                dropping = False
                start = nl + 1
                nl = _find_nl(chunk, start)
            if nl < 0:
                if start < size:
                    tail.append(chunk[start:])
                tail_len += size - start
                if tail_len > limit:  # never hold more than one line of the limit
                    yield overlong_line(prefix())
                    tail, tail_len, dropping = [], 0, True
                continue
            if tail:
                if tail_len + nl - start > limit:
                    yield overlong_line(prefix())
                else:
                    yield np.concatenate([*tail, chunk[start:nl + 1]])
                tail, tail_len = [], 0
                start = nl + 1
            cut = _rfind_nl(chunk, start)
            if cut < start:
                tail = [chunk[start:]] if start < size else []
                tail_len = size - start
                continue
            yield chunk[start:cut + 1]
            tail = [chunk[cut + 1:]] if cut + 1 < size else []
            tail_len = size - cut - 1
        if dropping:  # the stream ended inside an overlong line: it has no newline either
            self.unterminated = True
            return
        rest = np.concatenate(tail) if tail else _EMPTY
        if bytes(rest).strip():
            # tail holds no newline: the last line is unterminated. A plain file cut mid-line
            # reads as a shorter valid line (a cut '0/1' is a haploid '0', as bcftools reads
            # it too), so the caller refuses the file at this line (``unterminated``)
            self.unterminated = True
            yield np.concatenate([rest, np.full(1, 10, np.uint8)])


def open_source(path: Path) -> TextSource:
    if not path.exists():
        raise InvalidInput(str(path), None, "file not found")
    if not path.is_file():
        raise InvalidInput(str(path), None, "not a regular file")
    return TextSource(path=path, kind=sniff(path))
