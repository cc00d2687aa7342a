"""Reading VCF/BCF sources as header text + chunks of complete data lines.

* BGZF (``.vcf.gz`` written by bgzip/htslib): the compressed file is read in slices, the
  BGZF blocks are found from their headers and inflated with libdeflate on a thread pool
  (libdeflate releases the GIL, so both cores inflate), and each chunk is verified against
  the block's CRC32.
* plain gzip: streamed through zlib.
* uncompressed VCF: read as is.
* BCF: decoded by htslib (pysam) record by record and re-emitted as VCF text, so the same
  parser and validation apply. This path is correct but much slower than the text path.

Every chunk ends at a line boundary. Lines are never reordered.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import deflate
import numba as nb
import numpy as np

from vault.errors import InvalidInput

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
GZIP_MAGIC = b"\x1f\x8b"
BCF_MAGIC = b"BCF\x02"
CHUNK_COMPRESSED = 2 << 20  # bytes of BGZF read per slice (~60 MB of VCF text)
CHUNK_TEXT = 64 << 20


def sniff(path: Path) -> str:
    """'bgzf', 'gzip', 'bcf' (BGZF-compressed or not) or 'text'."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:4] == BGZF_MAGIC and head[12:14] == b"BC":
        with open(path, "rb") as fh:
            first = _inflate_block(fh.read(struct.unpack_from("<H", head, 16)[0] + 1), path)
        return "bcf" if first[:4] == BCF_MAGIC else "bgzf"
    if head[:2] == GZIP_MAGIC:
        with open(path, "rb") as fh:
            first = zlib.decompressobj(31).decompress(fh.read(1 << 16), 8)
        return "bcf" if first[:4] == BCF_MAGIC else "gzip"
    if head[:4] == BCF_MAGIC:
        return "bcf"
    return "text"


def _inflate_block(block: bytes | memoryview, path: Path) -> bytes | bytearray:
    """Inflate one BGZF block (header + deflate data + CRC32 + ISIZE), checking its CRC."""
    xlen = struct.unpack_from("<H", block, 10)[0]
    crc, isize = struct.unpack_from("<II", block, len(block) - 8)
    try:
        data = deflate.deflate_decompress(block[12 + xlen:-8], isize) if isize else b""
    except deflate.DeflateError as exc:
        raise InvalidInput(str(path), None, "corrupt BGZF block (deflate data does not "
                                            "decode): the file is damaged; re-copy it") from exc
    if deflate.crc32(data) != crc:
        raise InvalidInput(str(path), None, "corrupt BGZF block (CRC32 mismatch): the file is "
                                            "damaged or truncated; re-copy it")
    return data


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

    def raw_chunks(self) -> Iterator[bytes]:
        """Decompressed bytes in order (arbitrary boundaries)."""
        self.size = os.path.getsize(self.path)
        if self.kind == "bgzf":
            yield from self._bgzf_chunks()
        elif self.kind == "gzip":
            yield from self._gzip_chunks()
        elif self.kind == "text":
            with open(self.path, "rb") as fh:
                while block := fh.read(CHUNK_TEXT):
                    self._advance(len(block))
                    yield block
        else:
            yield from self._bcf_chunks()

    def _bgzf_chunks(self) -> Iterator[bytes]:
        path = self.path
        with open(path, "rb") as fh, ThreadPoolExecutor(max_workers=2) as pool:
            carry = b""
            queue: deque[tuple[Future[bytes], int]] = deque()
            eof = False
            while not eof or queue:
                while not eof and len(queue) < 2:  # keep both cores inflating ahead
                    raw = fh.read(CHUNK_COMPRESSED)
                    eof = not raw
                    data = carry + raw
                    offsets, used = _split_bgzf(data, path, final=eof)
                    carry = data[used:]
                    if offsets.size > 1:
                        queue.append((pool.submit(_inflate_many, data, offsets, path), used))
                if queue:
                    fut, used = queue.popleft()
                    self._advance(used)
                    yield fut.result()

    def _gzip_chunks(self) -> Iterator[bytes]:
        d = zlib.decompressobj(47)
        with open(self.path, "rb") as fh:
            while block := fh.read(CHUNK_COMPRESSED):
                self._advance(len(block))
                try:
                    out = d.decompress(block)
                    while d.eof and d.unused_data:  # concatenated gzip members
                        rest = d.unused_data
                        d = zlib.decompressobj(47)
                        out += d.decompress(rest)
                except zlib.error as exc:
                    raise InvalidInput(str(self.path), None, f"corrupt gzip data ({exc}): the "
                                                             "file is damaged; re-copy it") \
                        from exc
                if out:
                    yield out
            if not d.eof:
                raise InvalidInput(str(self.path), None,
                                   "truncated gzip file: re-copy the file")

    def _bcf_chunks(self) -> Iterator[bytes]:
        import pysam

        try:
            vf = pysam.VariantFile(str(self.path))
        except (ValueError, OSError) as exc:
            raise InvalidInput(str(self.path), None, f"htslib could not open the BCF: {exc}") \
                from exc
        with vf:
            yield str(vf.header).encode()
            buf: list[str] = []
            size = 0
            try:
                for rec in vf:
                    line = str(rec)
                    buf.append(line)
                    size += len(line)
                    if size > CHUNK_TEXT:
                        yield "".join(buf).encode()
                        buf, size = [], 0
            except (ValueError, OSError) as exc:
                raise InvalidInput(str(self.path), None,
                                   f"htslib could not decode a BCF record: {exc}") from exc
            if buf:
                yield "".join(buf).encode()
        self._advance(os.path.getsize(self.path))


@nb.njit(cache=True, nogil=True)
def _bgzf_offsets(raw: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Offsets of the whole BGZF blocks in ``raw`` (plus the end of the last one).

    Returns (offsets, bytes used, offset of the first invalid block header or -1).
    """
    n = raw.shape[0]
    offs = np.empty(n // 28 + 2, np.int64)
    m = 0
    p = 0
    while p + 18 <= n:
        if not (raw[p] == 31 and raw[p + 1] == 139 and raw[p + 2] == 8 and raw[p + 3] == 4
                and raw[p + 12] == 66 and raw[p + 13] == 67):
            return offs[:m], p, p
        bsize = (raw[p + 16] | (np.int64(raw[p + 17]) << 8)) + 1
        if p + bsize > n:
            break
        offs[m] = p
        m += 1
        p += bsize
    offs[m] = p
    return offs[:m + 1], p, -1


def _split_bgzf(raw: bytes, path: Path, final: bool) -> tuple[np.ndarray, int]:
    """Offsets of the whole BGZF blocks in ``raw``; returns (offsets, bytes used)."""
    offs, used, bad = _bgzf_offsets(np.frombuffer(raw, np.uint8))
    if bad >= 0:
        raise InvalidInput(str(path), None, f"not a valid BGZF block at byte {bad} of this "
                                            "slice: the file is corrupt or not bgzip-compressed")
    if final and used != len(raw):
        raise InvalidInput(str(path), None, "truncated BGZF file (incomplete last block): "
                                            "re-copy the file")
    return offs, used


def _inflate_many(raw: bytes, offsets: np.ndarray, path: Path) -> bytes:
    mv = memoryview(raw)
    bounds = offsets.tolist()
    return b"".join([_inflate_block(mv[a:b], path) for a, b in itertools.pairwise(bounds)])


class LineChunker:
    """Turns decompressed byte chunks into (header lines, data chunks of whole lines).

    Data chunks are zero-copy views of the decompressed chunks; only the one line that
    straddles two chunks is copied (and yielded as a chunk of its own, in order).
    """

    def __init__(self, chunks: Iterator[bytes], path: Path) -> None:
        self._chunks = chunks
        self._path = path
        self.header_lines: list[str] = []
        self._rest = b""
        self._rest_pos = 0

    def read_header(self) -> list[str]:
        buf = b""
        pos = 0
        for chunk in self._chunks:
            buf = buf[pos:] + chunk if pos < len(buf) else chunk
            pos = 0
            while pos < len(buf):
                if buf[pos] != 35:  # '#'
                    self._rest, self._rest_pos = buf, pos
                    return self.header_lines
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    break
                self.header_lines.append(buf[pos:nl].rstrip(b"\r").decode("utf-8", "replace"))
                pos = nl + 1
        self._rest, self._rest_pos = buf, pos
        return self.header_lines

    def data_chunks(self) -> Iterator[np.ndarray]:
        """Chunks of complete data lines as uint8 arrays (each ends with '\\n'), in order."""
        first = (self._rest, self._rest_pos)
        self._rest = b""
        tail = b""

        def pieces() -> Iterator[tuple[bytes, int]]:
            yield first
            for chunk in self._chunks:
                yield chunk, 0

        for chunk, start in pieces():
            if start >= len(chunk):
                continue
            nl = chunk.find(b"\n", start)
            if nl < 0:
                tail += chunk[start:]
                continue
            if tail:
                yield np.frombuffer(tail + chunk[start:nl + 1], np.uint8)
                tail = b""
                start = nl + 1
            cut = chunk.rfind(b"\n", start)
            if cut < start:
                tail = chunk[start:]
                continue
            yield np.frombuffer(chunk, np.uint8, count=cut + 1 - start, offset=start)
            tail = chunk[cut + 1:]
        if tail.strip():
            yield np.frombuffer(tail if tail.endswith(b"\n") else tail + b"\n", np.uint8)


def open_source(path: Path) -> TextSource:
    if not path.exists():
        raise InvalidInput(str(path), None, "file not found")
    if not path.is_file():
        raise InvalidInput(str(path), None, "not a regular file")
    return TextSource(path=path, kind=sniff(path))
