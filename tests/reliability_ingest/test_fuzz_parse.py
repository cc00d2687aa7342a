"""Hostile input to ingest's parser layer (no Vault): structure-aware VCF text (headers, meta
lines, records, GT syntax, ploidy), byte damage, and BGZF framing/CRC damage and truncation.

* Only ``InvalidInput`` (vault.errors) may come out, never another exception, never a hang
  (a watchdog kills the run after PER_EXAMPLE_S seconds on one example).
* Differential: every file the parser accepts decodes to exactly the rows and genotypes of
  the plain-Python reference (tests/reference/vcf_text.py).
* Damaged BCF (pysam-written, then byte damage, before or after BGZF) gives only InvalidInput.

GENOVAULT_FUZZ_EXAMPLES sets the number of examples per test (CI default 250); see
docs/reliability-ingest.md for the long run.
"""

from __future__ import annotations

import faulthandler
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference.vcf_text import decode_text
from tests.reliability_ingest.fuzzgen import FuzzFile, bgzf, damaged, fuzz_file
from tests.reliability_ingest.support import env_int
from tests.support.vcfgen import header, random_records, unpack
from vault.errors import InvalidInput
from vault.ingest.fileset import survey
from vault.ingest.pipeline import IngestOptions, _Ingest

EXAMPLES = env_int("GENOVAULT_FUZZ_EXAMPLES", 250)
#: a hang, not a slow example: numba compiles the parser's kernels before the watchdog is
#: armed (``compiled``), so one example takes milliseconds; 120 s leaves room for a loaded
#: machine (a JIT compile under load once took more than 30 s)
PER_EXAMPLE_S = 120
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


class _Collect:
    """Stands in for the BatchWriter: keeps what the pipeline hands it."""

    def __init__(self, n_samples: int) -> None:
        self.n = n_samples
        self.rows: list[tuple[int, int, str, list[int], int]] = []

    def add(self, contig: int, columns: dict[str, pa.Array], packed: np.ndarray) -> None:
        codes = unpack(packed, self.n) if self.n else np.zeros((len(columns["pos"]), 0))
        for i, (pos, alt, hap) in enumerate(zip(columns["pos"].to_pylist(),
                                               columns["alt"].to_pylist(),
                                               columns["n_haploid"].to_pylist(), strict=True)):
            self.rows.append((contig, pos, alt, codes[i].tolist(), hap))

    def abort(self) -> None:
        pass


def parse(path: Path) -> tuple[list[str], list[tuple[str, int, str, list[int], int]]]:
    """Everything ingest does with a file before Vault and the store: survey (checksum,
    header, first record), parse, split, order and contig checks. Returns (contigs, rows)."""
    files = survey([path])
    n = len(files[0].header.samples)
    ing = _Ingest([path], "fuzz", None, None, None,  # type: ignore[arg-type]
                  IngestOptions(progress=False))
    out = _Collect(n)
    contigs: list[str] = []
    ing._parse_files(out, files, n, contigs, None, lambda: None)  # type: ignore[arg-type]
    return contigs, [(contigs[c], p, a, codes, h) for c, p, a, codes, h in out.rows]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory, bcf_bytes: tuple[bytes, bytes]) -> None:
    """Parse a valid VCF and a valid BCF once, unguarded: on a machine whose numba cache is
    cold the kernels compile here (tens of seconds under load), not inside the watchdog."""
    folder = tmp_path_factory.mktemp("warm")
    recs, _codes = random_records(4, 20, seed=9)
    (folder / "w.vcf").write_text("\n".join(header([f"w{i}" for i in range(4)], ["1"]) + recs)
                                  + "\n")
    (folder / "w.bcf").write_bytes(bcf_bytes[0])
    for name in ("w.vcf", "w.bcf"):
        parse(folder / name)


@pytest.fixture
def watchdog(compiled: None) -> Iterator[None]:
    yield
    faulthandler.cancel_dump_traceback_later()


def _guarded(path: Path) -> tuple[list[str], list[Any]] | InvalidInput:
    faulthandler.dump_traceback_later(PER_EXAMPLE_S, exit=True)  # a hang kills the run loudly
    try:
        return parse(path)
    except InvalidInput as exc:
        assert str(exc).strip() and exc.reason, "an InvalidInput without a reason"
        return exc
    finally:
        faulthandler.cancel_dump_traceback_later()


def _text_of(f: FuzzFile) -> bytes:
    """The decompressed bytes, from the file itself when its framing was damaged."""
    if f.container == "bgzf" and f.framing_damaged:
        return gzip.decompress(f.raw)  # what an accepted damaged file must still inflate to
    return f.text


@FUZZ
@given(f=fuzz_file())
def test_parse__hostile_vcf_gives_invalid_input_or_the_reference_genotypes(
        f: FuzzFile, tmp_path_factory: pytest.TempPathFactory, watchdog: None) -> None:
    path = tmp_path_factory.mktemp("fz") / ("in.vcf" if f.container == "plain" else "in.vcf.gz")
    path.write_bytes(f.raw)
    got = _guarded(path)
    if isinstance(got, InvalidInput):
        return
    _contigs, rows = got
    try:
        text = _text_of(f)
    except (OSError, EOFError, zlib.error) as exc:
        pytest.fail(f"the parser accepted a file whose BGZF framing is broken ({exc})")
    n = len(survey([path])[0].header.samples)
    want = decode_text(text.decode("utf-8", "surrogateescape"), n)  # ValueError: a bug
    assert [(r.chrom, r.pos, r.alt, r.codes, r.n_haploid) for r in want] == rows


def test_parse__reference_agrees_on_a_plain_file(tmp_path: Path) -> None:
    """The harness itself: a valid file is accepted and equals the generator's codes."""
    samples = [f"s{i}" for i in range(7)]
    recs, codes = random_records(len(samples), 50, seed=3)
    path = tmp_path / "ok.vcf"
    path.write_text("\n".join(header(samples) + recs) + "\n")
    _contigs, rows = parse(path)
    assert np.array_equal(np.array([r[3] for r in rows]), codes)
    want = decode_text(path.read_text(), len(samples))
    assert [r.codes for r in want] == codes.tolist()


# --- BCF --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bcf_bytes(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A small valid BCF (pysam), as its file bytes and as its uncompressed stream."""
    folder = tmp_path_factory.mktemp("bcf")
    samples = [f"s{i}" for i in range(5)]
    recs, _codes = random_records(len(samples), 40, seed=5)
    recs[3] = recs[3].replace("\tGT\t0/0", "\tGT\t0|2", 1).replace("\tC\tG\t", "\tC\tG,T\t", 1)
    vcf = folder / "a.vcf"
    vcf.write_text("\n".join(header(samples, ["1"]) + recs) + "\n")
    out = folder / "a.bcf"
    with pysam.VariantFile(str(vcf)) as src, \
            pysam.VariantFile(str(out), "wb", header=src.header) as dst:
        for rec in src:
            dst.write(rec)
    raw = out.read_bytes()
    return raw, gzip.decompress(raw)


@FUZZ
@given(data=st.data())
def test_parse__damaged_bcf_gives_only_invalid_input(
        data: st.DataObject, bcf_bytes: tuple[bytes, bytes],
        tmp_path_factory: pytest.TempPathFactory, watchdog: None) -> None:
    raw, stream = bcf_bytes
    if data.draw(st.booleans(), label="damage the uncompressed stream"):
        body = data.draw(damaged(stream, max_edits=4))
        blob = bgzf(body, data.draw(st.sampled_from([100, 1000, 65280])))
    else:
        blob = data.draw(damaged(raw, max_edits=3))
    path = tmp_path_factory.mktemp("fb") / "in.bcf"
    path.write_bytes(blob)
    got = _guarded(path)
    if not isinstance(got, InvalidInput):
        _contigs, rows = got
        assert all(len(r[3]) == 5 and set(r[3]) <= {0, 1, 2, 3} for r in rows)
