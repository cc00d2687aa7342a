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

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import deflate
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


def _inflate_block(block: bytes, path: Path) -> bytes:
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
                    blocks, used = _split_bgzf(data, path, final=eof)
                    carry = data[used:]
                    if blocks:
                        queue.append((pool.submit(_inflate_many, blocks, path), used))
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


def _split_bgzf(raw: bytes, path: Path, final: bool) -> tuple[list[bytes], int]:
    """Cut ``raw`` into whole BGZF blocks; returns (blocks, bytes used)."""
    blocks = []
    p = 0
    n = len(raw)
    while p + 18 <= n:
        if raw[p:p + 4] != BGZF_MAGIC or raw[p + 12:p + 14] != b"BC":
            raise InvalidInput(str(path), None, f"not a valid BGZF block at byte {p}: the file "
                                                "is corrupt or not bgzip-compressed")
        bsize = struct.unpack_from("<H", raw, p + 16)[0] + 1
        if p + bsize > n:
            break
        blocks.append(raw[p:p + bsize])
        p += bsize
    if final and p != n:
        raise InvalidInput(str(path), None, "truncated BGZF file (incomplete last block): "
                                            "re-copy the file")
    return blocks, p


def _inflate_many(blocks: list[bytes], path: Path) -> bytes:
    return b"".join(_inflate_block(b, path) for b in blocks)


class LineChunker:
    """Turns decompressed byte chunks into (header lines, data chunks of whole lines)."""

    def __init__(self, chunks: Iterator[bytes], path: Path) -> None:
        self._chunks = chunks
        self._path = path
        self.header_lines: list[str] = []
        self._rest = b""

    def read_header(self) -> list[str]:
        buf = b""
        for chunk in self._chunks:
            buf += chunk
            while True:
                if not buf.startswith(b"#"):
                    self._rest = buf
                    return self.header_lines
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                self.header_lines.append(buf[:nl].rstrip(b"\r").decode("utf-8", "replace"))
                buf = buf[nl + 1:]
        self._rest = buf
        return self.header_lines

    def data_chunks(self) -> Iterator[np.ndarray]:
        """Chunks of complete data lines as uint8 arrays (each ends with '\\n')."""
        rest = self._rest
        self._rest = b""
        for chunk in self._chunks:
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield np.frombuffer(data, np.uint8, count=cut + 1)
        if rest.strip():
            yield np.frombuffer(rest if rest.endswith(b"\n") else rest + b"\n", np.uint8)


def open_source(path: Path) -> TextSource:
    if not path.exists():
        raise InvalidInput(str(path), None, "file not found")
    if not path.is_file():
        raise InvalidInput(str(path), None, "not a regular file")
    return TextSource(path=path, kind=sniff(path))
