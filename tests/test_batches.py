"""The "N+1 samples" behaviour: a dataset grows by batches of new samples, read as one cohort.

Two hand-built VCFs with disjoint samples and partly different sites (a shared site, sites of
one batch only, a second ALT at a shared position, a contig only one batch has) are ingested
as two batches; the read API must present them as one cohort where a site absent from a batch
is *not assessed* (code 3, ``assessed`` False) for that batch's samples — or hom-ref when the
batch was ingested with ``absent_sites_hom_ref`` — and never silently 0.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import hvac
import numpy as np
import pytest

from tests.support.vcfgen import GT_TEXT, header, unpack
from vault.errors import DatasetLocked, DuplicateIngest, SampleSheetError
from vault.ingest.pipeline import IngestResult
from vault.keys.kms import Keyring
from vault.store.dataset import Store
from vault.store.reader import DatasetReader
from vault.store.verify import verify_dataset

pytestmark = pytest.mark.integration  # every test ingests into / reads from OpenBao

Key = tuple[str, int, str, str]  # chrom, pos, ref, alt
A_IDS = [f"BATCHA_{i:02d}" for i in range(10)]  # 10: batch 2 starts mid-byte
B_IDS = [f"BATCHB_{i:02d}" for i in range(7)]
BIN = 1000


def site(chrom: str, i: int, alt: str | None = None) -> Key:
    return (chrom, 1000 + 100 * i, "ACGT"[i % 4], alt or "CGTA"[i % 4])


# Batch A: contig 1 sites i % 3 != 0, plus contig 2. Batch B: contig 1 sites i % 2 == 0, a
# second ALT at the shared position of i = 20, plus contig 3. Shared: i % 6 in (2, 4).
A_SITES = [site("1", i) for i in range(90) if i % 3] + [site("2", i) for i in range(0, 30, 3)]
B_SITES = sorted([site("1", i) for i in range(90) if i % 2 == 0] + [site("1", 20, "G")]
                 + [site("3", i) for i in range(5)],
                 key=lambda k: (k[0], k[1]))


def write_batch(path: Path, samples: list[str], sites: list[Key], seed: int,
                contigs: list[str]) -> dict[Key, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, (len(sites), len(samples))).astype(np.int8)
    codes[rng.random(codes.shape) < 0.1] = 3
    lines = header(samples, contigs)
    for (chrom, pos, ref, alt), row in zip(sites, codes, strict=True):
        lines.append("\t".join([chrom, str(pos), ".", ref, alt, "50", "PASS", ".", "GT",
                                *(GT_TEXT[int(c)] for c in row)]))
    path.write_text("\n".join(lines) + "\n")
    return {k: row for k, row in zip(sites, codes, strict=True)}


def write_sheet(path: Path, samples: list[str], columns: dict[str, list[str]]) -> Path:
    names = list(columns)
    rows = ["\t".join(["sample", *names])]
    rows += ["\t".join([s, *(columns[c][i] for c in names)]) for i, s in enumerate(samples)]
    path.write_text("\n".join(rows) + "\n")
    return path


class Cohort:
    """Two batch files, their sheets and their codes."""

    def __init__(self, folder: Path) -> None:
        self.a = folder / "batch_a.vcf"
        self.b = folder / "batch_b.vcf"
        self.codes_a = write_batch(self.a, A_IDS, A_SITES, 1, ["1", "2", "3"])
        self.codes_b = write_batch(self.b, B_IDS, B_SITES, 2, ["1", "2", "3"])
        self.sheet_a = write_sheet(folder / "a.tsv", A_IDS,
                                   {"population": ["popA"] * len(A_IDS)})
        self.sheet_b = write_sheet(folder / "b.tsv", B_IDS,
                                   {"population": ["popB"] * len(B_IDS),
                                    "sex": ["F", "M", "F", "M", "F", "M", "F"]})

    def expected(self, b_hom_ref: bool = False) -> dict[Key, tuple[np.ndarray, tuple[bool, ...]]]:
        """(codes of all 17 samples, assessed per batch) for every site of the union."""
        out: dict[Key, tuple[np.ndarray, tuple[bool, ...]]] = {}
        for key in set(self.codes_a) | set(self.codes_b):
            in_a, in_b = key in self.codes_a, key in self.codes_b
            a = self.codes_a[key] if in_a else np.full(len(A_IDS), 3, np.int8)
            b = self.codes_b[key] if in_b else np.full(len(B_IDS), 0 if b_hom_ref else 3,
                                                       np.int8)
            out[key] = (np.concatenate([a, b]), (in_a, in_b or b_hom_ref))
        return out


def read_all(reader: DatasetReader, region: str | None = None) -> dict[
        Key, tuple[np.ndarray, tuple[bool, ...]]]:
    out: dict[Key, tuple[np.ndarray, tuple[bool, ...]]] = {}
    last: tuple[int, int] = (-1, -1)
    for block in reader.blocks(region):
        assert block.packed is not None
        codes = unpack(block.packed, reader.n_samples)
        assert block.assessed.shape == (block.n_variants, len(reader.batches))
        ci = reader.contigs.index(block.contig)
        for r, (pos, ref, alt) in enumerate(zip(block.sites.column("pos").to_pylist(),
                                                block.sites.column("ref").to_pylist(),
                                                block.sites.column("alt").to_pylist(),
                                                strict=True)):
            assert (ci, pos) >= last, "rows are not in genome order"
            last = (ci, pos)
            key = (block.contig, pos, ref, alt)
            assert key not in out, f"row {key} presented twice"
            out[key] = (codes[r], tuple(bool(x) for x in block.assessed[r]))
    return out


def assert_same(got: dict[Key, tuple[np.ndarray, tuple[bool, ...]]],
                want: dict[Key, tuple[np.ndarray, tuple[bool, ...]]]) -> None:
    assert sorted(got) == sorted(want)
    for key, (codes, assessed) in want.items():
        assert np.array_equal(got[key][0], codes), key
        assert got[key][1] == assessed, key


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def cohort(tmp_path: Path) -> Cohort:
    return Cohort(tmp_path)


@pytest.fixture
def two_batches(cohort: Cohort, ingest_file: Callable[..., IngestResult],
                reader: Callable[[str], DatasetReader]) -> DatasetReader:
    ingest_file(cohort.a, "nplus1", cohort.sheet_a, bin_size=BIN)
    ingest_file(cohort.b, "nplus1", cohort.sheet_b)
    return reader("nplus1")


def test_batches__two_batches_read_as_one_cohort(cohort: Cohort, two_batches: DatasetReader,
                                                 ingest_client: hvac.Client) -> None:
    r = two_batches
    assert r.n_samples == len(A_IDS) + len(B_IDS)
    assert [b.batch for b in r.batches] == ["b0001", "b0002"]
    assert [b.sample_offset for b in r.batches] == [0, len(A_IDS)]
    assert r.contigs == ["1", "2", "3"]
    samples = r.samples()
    assert samples.column("sample_index").to_pylist() == list(range(r.n_samples))
    keyring = Keyring(ingest_client, "nplus1")  # ingest may pseudonymise, not decrypt
    assert samples.column("pseudonym").to_pylist() == keyring.pseudonymise(A_IDS + B_IDS)
    assert samples.column("population").to_pylist() == ["popA"] * 10 + ["popB"] * 7
    assert samples.column("sex").to_pylist() == [None] * 10 + ["F", "M", "F", "M", "F", "M",
                                                               "F"]
    assert_same(read_all(r), cohort.expected())
    assert verify_dataset(r).ok


def test_batches__absent_site_is_not_assessed_never_hom_ref(cohort: Cohort,
                                                            two_batches: DatasetReader) -> None:
    got = read_all(two_batches)
    only_a = site("1", 1)  # i = 1: A has it, B does not
    assert only_a in cohort.codes_a and only_a not in cohort.codes_b
    codes, assessed = got[only_a]
    assert (codes[len(A_IDS):] == 3).all() and assessed == (True, False)
    only_b = site("1", 0)
    codes, assessed = got[only_b]
    assert (codes[:len(A_IDS)] == 3).all() and assessed == (False, True)
    second_alt = site("1", 20, "G")  # B's second ALT at a position both batches have
    assert got[second_alt][1] == (False, True)
    assert got[site("1", 20)][1] == (True, True)
    # contig 2 is only in batch A (batch B has no file there), contig 3 only in batch B
    contig2 = [a for k, (_, a) in got.items() if k[0] == "2"]
    contig3 = [a for k, (_, a) in got.items() if k[0] == "3"]
    assert len(contig2) == 10 and len(contig3) == 5  # all() of nothing would pass
    assert all(a == (True, False) for a in contig2)
    assert all(a == (False, True) for a in contig3)
    shared = [k for k in cohort.codes_a if k in cohort.codes_b]
    assert len(shared) >= 10
    for k in shared:  # each batch's own codes, missing included, unchanged
        assert np.array_equal(got[k][0][:len(A_IDS)], cohort.codes_a[k])
        assert np.array_equal(got[k][0][len(A_IDS):], cohort.codes_b[k])


def test_batches__absent_sites_hom_ref_flag_applies_to_its_batch_only(
        cohort: Cohort, ingest_file: Callable[..., IngestResult],
        reader: Callable[[str], DatasetReader]) -> None:
    ingest_file(cohort.a, "homref", cohort.sheet_a, bin_size=BIN)
    ingest_file(cohort.b, "homref", cohort.sheet_b, absent_sites_hom_ref=True)
    r = reader("homref")
    assert [b.absent_sites for b in r.batches] == ["not_assessed", "hom_ref"]
    got = read_all(r)
    assert_same(got, cohort.expected(b_hom_ref=True))
    codes, assessed = got[site("1", 1)]
    assert (codes[len(A_IDS):] == 0).all() and assessed == (True, True)
    codes, assessed = got[site("1", 0)]  # batch A was not flagged: still not assessed
    assert (codes[:len(A_IDS)] == 3).all() and assessed == (False, True)
    # missing calls *in* batch B's file stay missing: the flag is about absent sites only
    assert any((cohort.codes_b[k] == 3).any() for k in cohort.codes_b)
    for k, row in cohort.codes_b.items():
        assert np.array_equal(got[k][0][len(A_IDS):], row)


def test_batches__sample_already_in_dataset_is_refused_and_nothing_changes(
        cohort: Cohort, two_batches: DatasetReader, store: Store,
        ingest_file: Callable[..., IngestResult], tmp_path: Path) -> None:
    ids = ["BATCHC_00", A_IDS[3], "BATCHC_01"]
    path = tmp_path / "batch_c.vcf"
    write_batch(path, ids, A_SITES[:20], 3, ["1", "2", "3"])
    before = tree(store.dataset_dir("nplus1"))
    with pytest.raises(SampleSheetError) as info:
        ingest_file(path, "nplus1")
    assert "already in dataset" in str(info.value) and "11" in str(info.value)  # VCF column
    assert A_IDS[3] not in str(info.value)  # errors name columns, never sample ids
    assert tree(store.dataset_dir("nplus1")) == before
    assert store.list() == ["nplus1"]
    assert_same(read_all(two_batches), cohort.expected())


@pytest.mark.parametrize("copy", [False, True], ids=["same_path", "renamed_copy"])
def test_batches__reingesting_the_same_file_is_refused_and_nothing_changes(
        cohort: Cohort, two_batches: DatasetReader, store: Store,
        ingest_file: Callable[..., IngestResult], tmp_path: Path, copy: bool) -> None:
    path = cohort.a
    if copy:
        path = tmp_path / "renamed.vcf"
        shutil.copy(cohort.a, path)
    before = tree(store.dataset_dir("nplus1"))
    with pytest.raises(DuplicateIngest) as info:
        ingest_file(path, "nplus1", cohort.sheet_a)
    assert "b0001" in str(info.value)
    assert tree(store.dataset_dir("nplus1")) == before
    assert_same(read_all(two_batches), cohort.expected())


@pytest.mark.parametrize("region", ["1:2000-5000", "1:2050-2999", "1:9900-", "2", "3:1000-1100",
                                    "1:1-999", "4"])
def test_batches__region_read_returns_exactly_the_rows_in_range(
        cohort: Cohort, two_batches: DatasetReader, region: str) -> None:
    chrom, _, span = region.partition(":")
    lo_s, _, hi_s = span.partition("-")
    lo, hi = int(lo_s or 1), int(hi_s) if hi_s else 10**12
    want = {k: v for k, v in cohort.expected().items() if k[0] == chrom and lo <= k[1] <= hi}
    got = read_all(two_batches, region)
    assert_same(got, want)
    if region == "1:2000-5000":  # both ends inclusive, several partitions of both batches
        assert {k[1] for k in got} >= {2000, 5000}
        assert len({k[1] // BIN for k in got}) == 4


def test_batches__second_writer_gets_dataset_locked(
        cohort: Cohort, ingest_file: Callable[..., IngestResult], store: Store,
        reader: Callable[[str], DatasetReader]) -> None:
    with store.lock("locked"), pytest.raises(DatasetLocked):  # a new dataset
        ingest_file(cohort.a, "locked", cohort.sheet_a, bin_size=BIN)
    assert store.list() == []
    ingest_file(cohort.a, "locked", cohort.sheet_a, bin_size=BIN)
    before = tree(store.dataset_dir("locked"))
    with store.lock("locked"), pytest.raises(DatasetLocked):  # adding a batch
        ingest_file(cohort.b, "locked", cohort.sheet_b)
    assert tree(store.dataset_dir("locked")) == before
    ingest_file(cohort.b, "locked", cohort.sheet_b)  # the lock is free again
    assert reader("locked").n_samples == len(A_IDS) + len(B_IDS)
