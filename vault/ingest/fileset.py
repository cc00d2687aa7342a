"""The files of one batch, surveyed before anything is written: checksums, headers, first
records, the same sample list in each, and the order they are written in.

Only the start of each file is read here (the header and first record); the full validation
comes with the real pass (vault.ingest.pipeline), which reports any problem at its line.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vault.errors import InvalidInput, SampleSheetError
from vault.ingest.header import VcfHeader, parse_header, sample_list_problem
from vault.ingest.source import LineChunker, open_source
from vault.store.fsutil import sha256_file


@dataclass
class SourceFile:
    """One input file as surveyed before anything is written."""

    path: Path
    kind: str
    header: VcfHeader
    checksum: str
    size: int
    #: CHROM and POS of its first record (None: no record, or one the parser will refuse)
    first: tuple[str, int] | None


def sort_files(files: list[SourceFile]) -> list[SourceFile]:
    """The files in the order they are written: by their first record, contigs in the order
    of the headers' ``##contig`` lines (then in the order of the files that start on them),
    positions ascending; files without a record last. The order files are given in does not
    matter (shell globs sort chr10 before chr2)."""
    rank: dict[str, int] = {}
    for f in files:
        for c in f.header.contigs:
            rank.setdefault(c, len(rank))
    for f in files:
        if f.first is not None:
            rank.setdefault(f.first[0], len(rank))

    def key(f: SourceFile) -> tuple[int, int]:
        return (rank[f.first[0]], f.first[1]) if f.first is not None else (len(rank), 0)

    return sorted(files, key=key)


def _peek(path: Path, want_first: bool) -> tuple[str, VcfHeader, tuple[str, int] | None]:
    """The kind, header and (with ``want_first``) first record of ``path``, reading only the
    start of it (the full validation comes with the real pass)."""
    source = open_source(path)
    if source.kind == "bcf":
        return source.kind, *_peek_bcf(path, want_first)
    chunks = _head_chunks(path, source.kind)
    try:
        chunker = LineChunker(chunks, path)
        header = parse_header(chunker.read_header(), str(path))
        first = None
        if want_first:
            for buf in chunker.data_chunks():
                first = _first_record(bytes(buf[:min(len(buf), 1 << 16)]))
                break
    finally:
        chunks.close()
    return source.kind, header, first


def _head_chunks(path: Path, kind: str) -> Generator[bytes, None, None]:
    """Decompressed bytes from the start of a text, gzip or BGZF file, 64 KiB at a time (no
    CRC checks or thread pool: only the header and first line are read this way)."""
    with open(path, "rb") as fh:
        if kind == "text":
            while block := fh.read(1 << 16):
                yield block
            return
        d = zlib.decompressobj(31)
        data = fh.read(1 << 16)
        while data:
            try:
                out = d.decompress(data, 1 << 20)
            except zlib.error:
                return  # the real pass reports the damage with its offset
            if out:
                yield out
            if d.unconsumed_tail:
                data = d.unconsumed_tail
            elif d.eof:
                data = d.unused_data or fh.read(1 << 16)
                d = zlib.decompressobj(31)
            else:
                data = fh.read(1 << 16)


def _first_record(line: bytes) -> tuple[str, int] | None:
    fields = line.split(b"\n", 1)[0].split(b"\t", 2)
    if len(fields) < 3 or not fields[1].isdigit():
        return None
    return fields[0].decode("utf-8", "replace"), int(fields[1])


def _peek_bcf(path: Path, want_first: bool) -> tuple[VcfHeader, tuple[str, int] | None]:
    """Header and first record of a BCF, read natively (vault.ingest.bcf) from its start."""
    from vault.ingest.bcf import BcfReader
    from vault.ingest.source import _container

    chunks = _head_chunks(path, "text" if _container(path) == "plain" else "bgzf")
    try:
        reader = BcfReader(chunks, path)  # checks the header's declared size before reading
        header = parse_header(reader.read_header(), str(path))
        first = None
        if want_first:
            with contextlib.suppress(InvalidInput):  # the real pass reports it at its record
                for chunk in reader.data_chunks():
                    if chunk.n_lines and chunk.err[0] == 0:
                        first = (chunk.field(0, 0), int(chunk.pos[0]))
                    break
    finally:
        chunks.close()
    return header, first


def survey(paths: list[Path]) -> list[SourceFile]:
    """Checksums, headers and first records of every file, checked against each other
    and sorted into the order they are written in (see :func:`sort_files`).

    Checksums are computed on other threads while the headers are read (hashlib releases
    the GIL), also for a single file; a header read inflates only the first blocks of a
    file.
    """
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="genovault-sha256") as pool:
        sums = [pool.submit(sha256_file, p) for p in paths]
        try:
            heads = [_peek(p, want_first=len(paths) > 1) for p in paths]
        except BaseException:
            for fut in sums:
                fut.cancel()
            raise
        checksums = [fut.result() for fut in sums]
    files = [SourceFile(p, kind, header, checksum, p.stat().st_size, first)
             for p, (kind, header, first), checksum in zip(paths, heads, checksums,
                                                            strict=True)]
    base = files[0]
    for f in files[1:]:
        problem = sample_list_problem(f.header.samples, base.header.samples)
        if problem is not None:
            raise SampleSheetError(
                f"{f.path} and {base.path} do not carry the same samples in the same order, "
                f"as the files of one batch must: {f.path.name} has {problem}")
    return sort_files(files)
