"""The fast paths of ingest give what the plain rules give.

* GT-only lines: their ends are taken from their length and checked by the genotype parser;
  a wrong guess falls back to the exact scan (property test against exact line ends).
* Two sample columns per 8-byte load: every unusual column, wherever it sits, goes to the
  general rules.
* BGZF inflated by libdeflate straight into one array: same bytes and same errors as the
  block-by-block path.
* The sample registry over pipelined keep-alive connections: per-entry answers as Vault gave
  them (real OpenBao), and a server that closes its connection is handled.
"""

from __future__ import annotations

import http.server
import itertools
import secrets
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.vcfgen import unpack
from vault.errors import InvalidInput, VaultDown
from vault.ingest import source
from vault.ingest import vcfparse as vp
from vault.ingest.source import LineChunker, TextSource
from vault.keys import pipelined, registry

FIXED = "1\t{pos}\t.\tA\tG\t.\tPASS\t."


def _exact(buf: np.ndarray, n_samples: int) -> vp.ParsedChunk:
    ends = vp.find_line_ends(buf)
    chunk = vp._parse_lines(buf, ends, np.zeros(ends.shape[0], np.bool_), n_samples)
    assert chunk is not None
    return chunk


def _same(a: vp.ParsedChunk, b: vp.ParsedChunk) -> None:
    for name in ("line_starts", "fs", "pos", "qual", "qual_null", "n_alt", "err", "err_col",
                 "row_start", "n_hap", "n_half", "no_gt"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    ok = np.repeat(a.err == 0, np.diff(a.row_start))
    np.testing.assert_array_equal(a.packed[ok], b.packed[ok])


# -- line ends taken from the line's length -----------------------------------------------

COLUMN = st.sampled_from(["0/0", "0/1", "1|1", "1/0", "./.", "./1", "0", ".", "2/0", "0/0/1",
                          "x/1", "0/1:5", "00/1", "0/"])
FORMAT = st.sampled_from(["GT", "GT", "GT", "GT:DP", "DP"])


@st.composite
def vcf_lines(draw: Any, n_samples: int) -> bytes:
    lines = []
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["regular", "regular", "columns", "short", "blank", "cr"]))
        head = FIXED.format(pos=100 + i) + "\t" + draw(FORMAT)
        if kind == "regular":
            cols = ["0/1"] * n_samples
        elif kind == "columns":
            cols = draw(st.lists(COLUMN, min_size=n_samples, max_size=n_samples))
        elif kind == "short":  # one column fewer: its real end comes before the guessed one
            cols = draw(st.lists(COLUMN, min_size=n_samples - 1, max_size=n_samples - 1))
        elif kind == "blank":
            lines.append("")
            continue
        else:
            cols = ["0/1"] * n_samples
            cols[-1] += "\r"
        lines.append("\t".join([head, *cols]))
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n_samples=st.integers(1, 9))
def test_speed__guessed_line_ends_never_change_the_parse(data: Any, n_samples: int) -> None:
    buf = np.frombuffer(data.draw(vcf_lines(n_samples)), np.uint8)
    _same(vp.parse_chunk(buf, n_samples), _exact(buf, n_samples))


def test_speed__wrong_guess_is_recovered() -> None:
    # line 1 has 2 of 4 columns; where 4 columns would end, line 2 ends: a wrong guess
    lines = [FIXED.format(pos=1) + "\tGT\t0/0\t0/1", "1\t2\t345", FIXED.format(pos=3)
             + "\tGT\t0/0\t0/1\t1/1\t0/0"]
    buf = np.frombuffer(("\n".join(lines) + "\n").encode(), np.uint8)
    ends, guessed = vp.find_lines(buf, 4)
    assert guessed[0] and ends[0] == buf.tobytes().index(b"1\t2\t345\n") + 7
    chunk = vp.parse_chunk(buf, 4)
    assert chunk.n_lines == 3
    assert chunk.err.tolist() == [vp.E_FEW_SAMPLES, vp.E_FIELDS, 0]
    _same(chunk, _exact(buf, 4))


def test_speed__two_threads_split_a_large_buffer() -> None:
    rng = np.random.default_rng(3)
    n = 301
    lines = []
    for i in range(4000):
        cols = rng.choice(["0/0", "0/1", "1/1", "0|1", "./.", "1"], size=n,
                          p=[0.5, 0.3, 0.1, 0.05, 0.04, 0.01])
        fmt = "GT" if i % 7 else "GT:DP"
        lines.append("\t".join([FIXED.format(pos=i + 1), fmt, *cols]))
    buf = np.frombuffer(("\n".join(lines) + "\n").encode(), np.uint8)
    assert buf.size > 2 << 20
    _same(vp.parse_chunk(buf, n), _exact(buf, n))


# -- two columns per load ------------------------------------------------------------------

def _expected(col: str) -> tuple[int, int]:
    """(code, error) of one biallelic GT column by the rules of docs/format.md."""
    alleles = col.replace("|", "/").split("/")
    if len(alleles) > 2:
        return 0, vp.E_PLOIDY
    if any(a != "." and not a.isdigit() for a in alleles):
        return 0, vp.E_GT
    if any(a.isdigit() and int(a) > 1 for a in alleles):
        return 0, vp.E_ALLELE
    if "." in alleles:
        return 3, 0
    return (2 * int(alleles[0]) if len(alleles) == 1 else sum(map(int, alleles))), 0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 13])
@pytest.mark.parametrize("col", ["2/0", "0/2", "./1", ".", "0", "1", "0|0", "1|0", "0/0/1",
                                 "x/1", "0-1", "0/1\t", "9/9"])
def test_speed__an_unusual_column_anywhere_goes_to_the_rules(n: int, col: str) -> None:
    for s in range(n):
        cols = ["0/1"] * n
        cols[s] = col
        text = "\t".join([FIXED.format(pos=1), "GT", *cols]) + "\n"
        chunk = vp.parse_chunk(np.frombuffer(text.encode(), np.uint8), n)
        if col.endswith("\t"):  # an empty column after it
            assert chunk.err[0] != 0
            continue
        code, err = _expected(col)
        assert int(chunk.err[0]) == err, (n, s)
        if err:
            assert int(chunk.err_col[0]) == s
            continue
        want = [1] * n
        want[s] = code
        assert unpack(chunk.packed, n).tolist() == [want], (n, s)


# -- BGZF through libdeflate ---------------------------------------------------------------

def _bgzf(data: bytes) -> bytes:
    out = []
    for i in range(0, len(data), 0xFF00):
        piece = data[i:i + 0xFF00]
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        cdata = c.compress(piece) + c.flush()
        head = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
        out.append(head + struct.pack("<H", 18 + len(cdata) + 8 - 1) + cdata
                   + struct.pack("<II", zlib.crc32(piece), len(piece)))
    return b"".join(out) + source.BGZF_EOF  # the end-of-file block bgzip writes


def _inflated(path: Path) -> bytes:
    return b"".join(bytes(c) for c in TextSource(path, "bgzf").raw_chunks())


@pytest.fixture(params=["libdeflate", "deflate-package"])
def inflate_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "deflate-package":
        monkeypatch.setattr(source, "_libdeflate", lambda: None)
    else:
        assert source._libdeflate() is not None
    monkeypatch.setattr(source, "CHUNK_COMPRESSED", 1 << 15)  # many tasks
    return str(request.param)


def test_speed__inflate_gives_the_bytes(tmp_path: Path, inflate_path: str) -> None:
    data = np.random.default_rng(0).integers(0, 4, 3 << 20).astype(np.uint8).tobytes()
    path = tmp_path / "x.gz"
    path.write_bytes(_bgzf(data))
    assert _inflated(path) == data


@pytest.mark.parametrize("damage", ["crc", "deflate"])
def test_speed__corrupt_block_named_by_its_offset(damage: str, tmp_path: Path,
                                                  inflate_path: str) -> None:
    data = bytes(range(256)) * 2000
    blob = bytearray(_bgzf(data))
    second = struct.unpack_from("<H", blob, 16)[0] + 1  # offset of block 2
    bsize = struct.unpack_from("<H", blob, second + 16)[0] + 1
    if damage == "crc":
        blob[second + bsize - 8] ^= 0xFF
    else:
        blob[second + 18:second + 30] = b"\xff" * 12
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(InvalidInput, match=f"corrupt BGZF block at byte offset {second} "):
        _inflated(path)


def test_speed__line_chunker_takes_arrays_and_bytes() -> None:
    text = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + b"".join(
        f"1\t{i}\t.\tA\tG\t.\t.\t.\n".encode() for i in range(1, 500))
    cuts = [0, 5, 40, 41, 200, 1000, 1001, 5000, len(text)]

    def chunks(as_array: bool) -> Iterator[Any]:
        for a, b in itertools.pairwise(cuts):
            yield np.frombuffer(text[a:b], np.uint8) if as_array else text[a:b]

    for as_array in (True, False):
        ch = LineChunker(chunks(as_array), Path("x.vcf"))
        assert len(ch.read_header()) == 2
        body = b"".join(bytes(c) for c in ch.data_chunks())
        assert body == text[text.index(b"1\t1\t"):]


# -- the registry over pipelined connections -----------------------------------------------

@pytest.mark.integration
def test_speed__registry_answers_each_entry_as_vault_did(
        ingest_client: hvac.Client) -> None:
    client = ingest_client
    ds, uid = "pipe-reg", secrets.token_hex(16)
    ps = [secrets.token_hex(32) for _ in range(300)]
    before = sorted(np.random.default_rng(5).choice(300, 70, replace=False).tolist())
    assert registry.create_entries(client, ds, uid, [ps[i] for i in before]).error is None
    out = registry.create_entries(client, ds, uid, ps)
    assert out.error is None and out.complete
    assert out.present == before
    assert out.created == sorted(set(range(300)) - set(before))
    registry.release(client, ds, uid, ps)
    again = registry.create_entries(client, ds, uid, ps[:50])
    assert again.created == list(range(50)) and not again.present
    registry.release(client, ds, uid, ps[:50])


@pytest.mark.integration
def test_speed__registry_stop_skips_unsent_and_reads_what_was_sent(
        ingest_client: hvac.Client) -> None:
    client = ingest_client
    ds, uid = "pipe-stop", secrets.token_hex(16)
    ps = [secrets.token_hex(32) for _ in range(200)]
    stop = threading.Event()
    seen: list[int] = []

    def answer(i: int, status: int, body: bytes) -> bool:
        seen.append(i)
        if len(seen) == 10:
            stop.set()
        pipelined.raise_for_status("POST", "entry", status, body)
        return False

    reqs = [("POST", registry._path(ds, uid, p), b'{"registered":"1"}') for p in ps]
    answers, exc = pipelined.send_all(client, reqs, answer, stop, connections=2, window=8)
    assert exc is None
    sent = [i for i, a in enumerate(answers) if a is not None]
    assert 10 <= len(sent) < 200 and sorted(seen) == sent
    # exactly the answered ones exist: creating them again is refused, the others are new
    out = registry.create_entries(client, ds, uid, ps)
    assert out.present == sent
    registry.release(client, ds, uid, ps)


class _Closing(http.server.BaseHTTPRequestHandler):
    """Answers 204, and every third request also ``Connection: close`` and closes; the
    request after ``BREAK`` gets no answer at all (the connection is cut)."""

    protocol_version = "HTTP/1.1"
    count = 0
    BREAK = 10_000
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with _Closing.lock:
            _Closing.count += 1
            n = _Closing.count
        if n > _Closing.BREAK:
            self.close_connection = True
            return
        self.send_response(204)
        if n % 3 == 0:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    _Closing.count = 0
    _Closing.BREAK = 10_000
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Closing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _ok(i: int, status: int, body: bytes) -> int:
    return status


def test_speed__pipeline_resends_after_connection_close(closing_server: str) -> None:
    client = hvac.Client(url=closing_server, token="t")
    reqs = [("POST", f"/v1/x/{i}", b"{}") for i in range(100)]
    answers, exc = pipelined.send_all(client, reqs, _ok, connections=2, window=8)
    assert exc is None and answers == [204] * 100
    assert _Closing.count == 100  # every request handled exactly once


def test_speed__pipeline_cut_connection_is_vault_down(closing_server: str) -> None:
    _Closing.BREAK = 40
    client = hvac.Client(url=closing_server, token="t")
    paths = [f"/v1/genovault-registry/ds/{'ab' * 16}/{i:064x}" for i in range(100)]
    answers, err = registry._each(client, "POST", paths, "registering", lambda s, b: False)
    assert isinstance(err, VaultDown)
    answered = [a for a in answers if a is not None]
    assert 30 <= len(answered) <= 40  # the answered ones are known, the rest are not


# -- missing calls per sample, 32 samples per load -----------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), rows=st.integers(0, 600), miss=st.floats(0, 1),
       seed=st.integers(0, 2**31))
def test_speed__missing_per_sample_counts_code_3(n: int, rows: int, miss: float,
                                                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, (rows, n))
    codes[rng.random((rows, n)) < miss] = 3
    packed = np.zeros((rows, (n + 3) // 4), np.uint8)
    for s in range(n):
        packed[:, s // 4] |= (codes[:, s] << (2 * (s % 4))).astype(np.uint8)
    np.testing.assert_array_equal(vp.missing_per_sample(packed, n), (codes == 3).sum(axis=0))
