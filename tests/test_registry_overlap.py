"""The sample registration runs in the background while the file is parsed: a duplicate stops
the parse early, nothing is committed before every sample is registered, and a failure while
registration is still running releases exactly what this run registered."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.vcfgen import header, random_records, write_vcf
from vault.errors import InvalidInput, SampleSheetError
from vault.ingest import source, vcfparse
from vault.ingest.pipeline import IngestResult
from vault.ingest.registration import Registration
from vault.keys import pipelined, registry
from vault.store import writer as store_writer
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

N_RECORDS = 3000


def big_vcf(path: Path, samples: list[str], seed: int, extra: list[str] | None = None) -> Path:
    recs, _ = random_records(len(samples), N_RECORDS, seed=seed)
    return write_vcf(path, header(samples) + recs + (extra or []))


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain-text VCFs read 10 kB at a time: a few thousand records are dozens of chunks."""
    monkeypatch.setattr(source, "CHUNK_TEXT", 10_007)


def test_overlap__duplicate_stops_the_parse_early_and_leaves_nothing(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path,
        small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    # when `hold` is set, registration starts with the first chunk's parse, and the second
    # chunk waits until it is through (a slow registration of a large file, made exact)
    hold = threading.Event()
    parsing = threading.Event()
    registered = threading.Event()
    parse_chunk = vcfparse.parse_chunk

    def parse(buf: Any, n_samples: int) -> Any:
        parsed.append(len(parsed))
        parsing.set()
        if hold.is_set() and len(parsed) == 2:
            assert registered.wait(60)
        return parse_chunk(buf, n_samples)

    run = Registration._run

    def run_then_tell(self: Registration) -> None:
        if hold.is_set():
            assert parsing.wait(60)
        run(self)
        registered.set()

    monkeypatch.setattr(vcfparse, "parse_chunk", parse)
    monkeypatch.setattr(Registration, "_run", run_then_tell)
    ingest_file(big_vcf(tmp_path / "a.vcf", ["OVD_A0", "OVD_A1"], seed=1), "ovdup")
    total = len(parsed)
    assert total >= 20, total  # the file is many chunks
    folder = store.dataset_dir("ovdup")
    before = tree(folder)
    parsed.clear()
    parsing.clear()
    registered.clear()
    hold.set()
    b = big_vcf(tmp_path / "b.vcf", ["OVD_B0", "OVD_A1", "OVD_B1"], seed=2)
    with pytest.raises(SampleSheetError, match=re.escape("1 sample(s) are already in dataset")):
        ingest_file(b, "ovdup")
    # the duplicate was found while chunk 1 or 2 was parsed (whichever check came first after
    # the registration finished): chunk 3 was never parsed, of 20+
    assert 1 <= len(parsed) <= 2, f"{len(parsed)} chunks parsed of {total}"
    assert tree(folder) == before
    assert not any((folder / ".pending").iterdir())
    hold.clear()
    # only this run's registrations were released: the duplicate stays registered ...
    with pytest.raises(SampleSheetError, match="already in dataset"):
        ingest_file(big_vcf(tmp_path / "c.vcf", ["OVD_A1"], seed=3), "ovdup")
    # ... and the refused file's new samples can come in another file
    res = ingest_file(big_vcf(tmp_path / "d.vcf", ["OVD_B0", "OVD_B1"], seed=4), "ovdup")
    assert res.batch == "b0002" and store.manifest("ovdup").sample_count == 4


@pytest.mark.parametrize("duplicate", [False, True], ids=["fresh", "duplicate"])
def test_overlap__nothing_is_committed_before_registration_finished(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path,
        small_chunks: None, monkeypatch: pytest.MonkeyPatch, duplicate: bool) -> None:
    ds = f"ovslow-{duplicate}".lower()
    ingest_file(big_vcf(tmp_path / "a.vcf", ["OVS_A0", "OVS_A1"], seed=1), ds)
    folder = store.dataset_dir(ds)
    before = tree(folder)
    # registration sends nothing until the whole file is parsed and written to staging
    written = threading.Event()
    close = store_writer.BatchWriter.close

    def close_then_tell(self: store_writer.BatchWriter) -> Any:
        out = close(self)
        written.set()
        return out

    seen: list[dict[str, bytes]] = []
    create = registry.create_entries

    def slow(client: Any, dataset: str, uid: str, pseudonyms: Sequence[str],
             stop: threading.Event | None = None) -> registry.Outcome:
        assert written.wait(60), "the parse waited for the registration"
        seen.append(tree(folder))
        return create(client, dataset, uid, pseudonyms, stop)

    monkeypatch.setattr(store_writer.BatchWriter, "close", close_then_tell)
    monkeypatch.setattr(registry, "create_entries", slow)
    samples = ["OVS_B0", "OVS_A1" if duplicate else "OVS_B1"]
    b = big_vcf(tmp_path / "b.vcf", samples, seed=2)
    if duplicate:
        with pytest.raises(SampleSheetError, match="already in dataset"):
            ingest_file(b, ds)
        assert tree(folder) == before
    else:
        assert ingest_file(b, ds).batch == "b0002"
    # while the file was fully written but not yet registered, nothing was visible: the same
    # files as before, plus the staging folder's and the marker (the uid, not `complete`)
    assert seen and {k: v for k, v in seen[0].items() if k in before} == before
    extra = {k: v for k, v in seen[0].items() if k not in before}
    markers = [k for k in extra if not k.startswith(".staging/")]
    assert len(markers) == 1 and markers[0].startswith(".pending/"), list(extra)
    assert extra[markers[0]].split() == [store.manifest(ds).uid.encode()]


def test_overlap__bad_record_while_registering_releases_this_runs_samples(
        ingest_file: Callable[..., IngestResult], store: Store, tmp_path: Path,
        small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # a second batch, so that the dataset (and its registry uid) outlives the failure
    ingest_file(big_vcf(tmp_path / "base.vcf", ["OVF_BASE"], seed=4), "ovfail")
    folder = store.dataset_dir("ovfail")
    before = tree(folder)
    samples = [f"OVF_{i:02d}" for i in range(40)]
    # one registry request at a time, and each answer, once read, holds the registration until
    # the ingest stops registering: registration is still under way when the parse meets the
    # bad record at the end
    sent: list[int] = []
    send_all = pipelined.send_all

    def held(client: Any, requests: Sequence[Any], answer: Callable[[int, int, bytes], Any],
             stop: threading.Event | None = None, **kw: Any) -> Any:
        if stop is None:  # the release
            return send_all(client, requests, answer, stop, **kw)
        halt = stop

        def answer_and_hold(i: int, status: int, body: bytes) -> Any:
            out = answer(i, status, body)
            sent.append(i)
            assert halt.wait(60), "registration was never stopped"
            return out

        return send_all(client, requests, answer_and_hold, stop, connections=1, window=1)

    monkeypatch.setattr(pipelined, "send_all", held)
    bad_line = 3 + N_RECORDS + 1  # vcfgen's 3 header lines, the records, then the bad one
    bad = big_vcf(tmp_path / "bad.vcf", samples, seed=5, extra=[
        "1\t99999999\t.\tA\tG\t50\tPASS\t.\tGT\t" + "\t".join(["0/1"] * 39 + ["not_a_gt"])])
    with pytest.raises(InvalidInput, match=re.escape(f"bad.vcf:{bad_line}")):
        ingest_file(bad, "ovfail")
    assert 0 < len(sent) < len(samples), len(sent)  # cut short, some registered
    assert tree(folder) == before
    assert not any((folder / ".pending").iterdir())
    monkeypatch.setattr(pipelined, "send_all", send_all)
    res = ingest_file(big_vcf(tmp_path / "good.vcf", samples, seed=5), "ovfail")
    assert res.batch == "b0002" and store.manifest("ovfail").sample_count == 41
