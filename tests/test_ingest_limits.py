"""Decompression bombs and unbounded input: small files that inflate to gigabytes are refused
with file and line (or byte offset), and the ingest's memory stays bounded.

Each bomb is built by streaming (repeated gzip members or BGZF blocks), so the test itself
never holds the inflated data. The ingest runs in a child process, whose peak RSS growth
(``resource.getrusage``, measured after the imports) is the ingest's own.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.baodev import DevServer
from tests.support.vcfgen import header
from vault.ingest import limits
from vault.ingest.limits import OverlongLine
from vault.ingest.source import LineChunker
from vault.keys.bootstrap import BootstrapReport, mint_role_token

GB = 1 << 30
MB = 1 << 20
MAX_GROWTH_MB = 1024
HEADER = "\n".join(header(["s1", "s2", "s3"])) + "\n"  # 3 lines
RECORD = "1\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1\t1/1\n"

CHILD = r"""
import json, resource, sys
from pathlib import Path
import hvac
from vault.errors import InvalidInput
from vault.ingest.pipeline import IngestOptions, ingest
from vault.store.dataset import Store

path, store, addr, token, skip = sys.argv[1:6]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"error": None}
try:
    res = ingest(Path(path), "bomb", client=hvac.Client(url=addr, token=token),
                 store=Store(Path(store)),
                 options=IngestOptions(progress=False, skip_invalid=skip == "1"))
    out["qc"] = res.qc
except InvalidInput as exc:
    out.update(error=str(exc), line=exc.line, path=exc.path, reason=exc.reason)
out["growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


@pytest.fixture
def run_child(tmp_path: Path, bao_server: DevServer,
              bootstrapped: BootstrapReport) -> Callable[..., dict]:
    """``run_child(path, skip=False)``: ingest ``path`` in a child process, return its report."""
    token = mint_role_token(bao_server.client(), "ingest", ttl="15m")

    def run(path: Path, skip: bool = False) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(tmp_path / "store"), bao_server.addr,
             token, "1" if skip else "0"],
            capture_output=True, text=True, timeout=120, check=False,
            cwd=Path(__file__).parents[1])
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["growth_mb"] < MAX_GROWTH_MB, report
        print(f"{path.name}: peak RSS growth {report['growth_mb']:.0f} MB")
        return report

    return run


def _gzip_bomb(path: Path, prefix: str, filler: bytes, total: int, suffix: str = "") -> Path:
    """prefix + ``total`` bytes of filler + suffix as concatenated gzip members."""
    piece = filler * (MB // len(filler))
    member = gzip.compress(piece, 9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(prefix.encode()))
        for _ in range(total // len(piece)):
            fh.write(member)
        if suffix:
            fh.write(gzip.compress(suffix.encode()))
    return path


def _bgzf_block(data: bytes, isize: int | None = None) -> bytes:
    """One BGZF block of ``data`` (``isize`` overrides the declared inflated size)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    cdata = c.compress(data) + c.flush()
    bsize = 18 + len(cdata) + 8
    assert bsize <= 1 << 16
    head = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
    return (head + struct.pack("<H", bsize - 1) + cdata
            + struct.pack("<II", zlib.crc32(data), len(data) if isize is None else isize))


def _bgzf_blocks(text: bytes) -> Iterator[bytes]:
    for i in range(0, len(text), 0xFF00):
        yield _bgzf_block(text[i:i + 0xFF00])


BGZF_EOF = _bgzf_block(b"")


@pytest.mark.integration
def test_limits__gzip_huge_header_line(tmp_path: Path, run_child: Callable[..., dict]) -> None:
    path = _gzip_bomb(tmp_path / "h.vcf.gz", "##fileformat=VCFv4.2\n##x=", b"A", 3 * GB)
    assert path.stat().st_size < 5 * MB
    rep = run_child(path)
    assert rep["path"] == str(path)
    assert rep["line"] == 2
    assert "the header is larger than 64 MiB" in rep["reason"]


@pytest.mark.integration
def test_limits__too_many_header_lines(tmp_path: Path, run_child: Callable[..., dict]) -> None:
    path = _gzip_bomb(tmp_path / "n.vcf.gz", "##fileformat=VCFv4.2\n", b"##a=b\n", 8 * MB)
    rep = run_child(path)
    assert rep["line"] == limits.MAX_HEADER_LINES + 1
    assert "more than 1,000,000 header lines" in rep["reason"]


@pytest.mark.integration
def test_limits__gzip_long_data_line(tmp_path: Path, run_child: Callable[..., dict]) -> None:
    path = _gzip_bomb(tmp_path / "l.vcf.gz", HEADER + "1\t100\t.\tA\t", b"A", 3 * GB)
    rep = run_child(path)
    assert rep["path"] == str(path)
    assert rep["line"] == 4
    assert "data line longer than GenoVault's limit of 1 MiB + 1 KiB per sample" in \
        rep["reason"]


@pytest.mark.integration
def test_limits__long_data_line_skipped_without_holding_it(tmp_path: Path,
                                                           run_child: Callable[..., dict]) -> None:
    path = _gzip_bomb(tmp_path / "s.vcf.gz", HEADER + "1\t100\t.\tA\t", b"A", GB,
                      suffix="\n" + RECORD)
    rep = run_child(path, skip=True)
    assert rep["error"] is None, rep
    assert rep["qc"]["skipped_records"] == {"line_too_long": 1}
    assert rep["qc"]["records_written"] == 1


@pytest.mark.integration
def test_limits__bgzf_block_declaring_60_mib(tmp_path: Path,
                                             run_child: Callable[..., dict]) -> None:
    first = _bgzf_block(HEADER.encode())
    bomb = _bgzf_block(b"A" * (60 * MB))  # deflate fits 60 MiB of 'A' in one 16-bit BSIZE
    path = tmp_path / "b.vcf.gz"
    path.write_bytes(first + bomb * 16 + BGZF_EOF)
    assert path.stat().st_size < 2 * MB
    rep = run_child(path)
    assert rep["path"] == str(path)
    assert rep["reason"] == (
        f"BGZF block at byte offset {len(first)} declares {60 * MB} inflated bytes; the BGZF "
        "format allows at most 65536 (the file is malformed or a decompression bomb); "
        "re-compress it with bgzip")


@pytest.mark.integration
def test_limits__bgzf_block_inflating_past_its_isize(tmp_path: Path,
                                                     run_child: Callable[..., dict]) -> None:
    # a block that lies about its size: ISIZE 64 KiB, deflate data of 60 MiB
    bomb = _bgzf_block(b"A" * (60 * MB), isize=1 << 16)
    path = tmp_path / "lie.vcf.gz"
    path.write_bytes(_bgzf_block(HEADER.encode()) + bomb * 4 + BGZF_EOF)
    rep = run_child(path)
    assert "corrupt BGZF block at byte offset" in rep["reason"]


@pytest.mark.integration
def test_limits__bgzf_of_valid_blocks_stays_bounded(tmp_path: Path,
                                                    run_child: Callable[..., dict]) -> None:
    # valid 64 KiB blocks compress 'A' ~700:1: a 2 MiB slice would inflate to 1.4 GB
    text = (HEADER + "1\t100\t.\tA\t").encode()
    block = _bgzf_block(b"A" * 0xFF00)
    path = tmp_path / "v.vcf.gz"
    n = 3 * GB // 0xFF00
    with open(path, "wb") as fh:
        for b in _bgzf_blocks(text):
            fh.write(b)
        for _ in range(n):
            fh.write(block)
        fh.write(BGZF_EOF)
    assert path.stat().st_size < 8 * MB
    rep = run_child(path)
    assert rep["line"] == 4
    assert "data line longer than" in rep["reason"]


@pytest.mark.integration
def test_limits__bcf_header_size_checked_before_htslib(tmp_path: Path,
                                                       run_child: Callable[..., dict]) -> None:
    body = b"BCF\x02\x02" + struct.pack("<I", 3 * GB) + b"##fileformat=VCFv4.2\n"
    path = tmp_path / "h.bcf"
    path.write_bytes(_bgzf_block(body) + BGZF_EOF)
    rep = run_child(path)
    assert rep["path"] == str(path)
    assert f"the BCF header declares {3 * GB} bytes" in rep["reason"]


def _chunker(text: bytes, step: int) -> LineChunker:
    chunks = (text[i:i + step] for i in range(0, len(text), step))
    return LineChunker(chunks, Path("x.vcf"))


@pytest.mark.parametrize("step", [1000, 70_000, 1_500_000])
def test_limits__line_at_the_limit_kept_longer_one_replaced(step: int) -> None:
    samples = [f"s{i}" for i in range(1000)]
    hdr = ("\n".join(header(samples)) + "\n").encode()
    limit = limits.max_line_bytes(len(samples))
    assert limit == MB + 1000 * 1024
    ok = b"1\t1\t.\tA\t" + b"G" * (limit - 8)
    long = b"1\t2\t.\tA\t" + b"G" * (limit - 7)
    ch = _chunker(hdr + ok + b"\n" + long + b"\n" + RECORD.encode(), step)
    assert len(ch.read_header()) == 3
    assert ch.max_line == limit
    out = list(ch.data_chunks())
    lines = [bytes(c) for c in out if not isinstance(c, OverlongLine)]
    assert sum(isinstance(c, OverlongLine) for c in out) == 1
    joined = b"".join(lines)
    assert joined.count(b"\n") == 2
    assert joined.startswith(ok + b"\n") and joined.endswith(RECORD.encode())
    # a line over the limit inside one chunk is flagged by the parser (same rule)
    from vault.ingest import vcfparse as vp

    chunk = vp.parse_chunk(np.frombuffer(ok + b"\n" + long + b"\n", np.uint8), 1000)
    assert chunk.err[1] == vp.E_LONG_LINE
    assert chunk.err[0] != vp.E_LONG_LINE
