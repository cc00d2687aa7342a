"""Ingest: VCF/BCF file(s) -> one encrypted batch of a dataset, committed atomically.

A batch is one file, or several files with the same samples in the same order (a release
split per chromosome or region), written as one: they are sorted by their first record and
must hold disjoint regions (vault.ingest.order.BatchRegions). Files can also be added to an
existing batch later (``IngestOptions.batch``), as a part with its own folder.

Stages overlap: BGZF blocks are inflated on a thread pool ahead of the parser, the numba
parser runs on both cores, Parquet encoding + encryption run on a writer thread, and the
samples are registered in Vault's sample registry on another (vault.ingest.registration).

Nothing of an ingest becomes visible before its last step, the atomic replacement of the
dataset's manifest. A failure (bad input, Vault down, a crash, a kill) at any earlier point
leaves the dataset as it was; the next write removes the debris. Vault unreachable means
the ingest fails: nothing is ever written in plaintext.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vault import faults
from vault.errors import (
    ConfigError,
    DuplicateIngest,
    IngestError,
    InvalidInput,
    SampleSheetError,
    StoreError,
)
from vault.ids import check_dataset_id
from vault.ingest import vcf_info
from vault.ingest import vcfparse as vp
from vault.ingest.fileset import SourceFile, survey
from vault.ingest.header import VcfHeader, parse_header
from vault.ingest.labels import check_labels
from vault.ingest.memory import collector_on_new_objects, reuse_freed_memory
from vault.ingest.order import BatchRegions, OrderChecker
from vault.ingest.registration import Registration
from vault.ingest.samplesheet import SampleSheet, read_sample_sheet
from vault.ingest.source import UNTERMINATED, open_source
from vault.keys import signing
from vault.keys.client import VaultClient, token_identity
from vault.keys.kms import DatasetKeys, Keyring
from vault.keys.names import batch_genotype_key
from vault.store import batchinfo
from vault.store import format as fmt
from vault.store.dataset import DIR_MODE, Store, pending_name, utcnow
from vault.store.fsutil import fsync_path
from vault.store.manifest import (
    Batch,
    FileEntry,
    Identity,
    Manifest,
    Part,
    Partition,
    Source,
    VariantFile,
)
from vault.store.writer import BatchWriter


@dataclass
class IngestOptions:
    skip_invalid: bool = False
    #: grouping columns an admin insists on keeping although most of their values are unique
    allow_identifying_columns: tuple[str, ...] = ()
    absent_sites_hom_ref: bool = False
    bin_size: int = fmt.DEFAULT_BIN_SIZE
    progress: bool | None = None  # None: only when stderr is a terminal (the CLI passes
    # False when GENOVAULT_NO_PROGRESS is set)
    #: add the file(s) to this existing batch (e.g. "b0001") instead of making a new one
    batch: str | None = None
    #: INFO fields kept as site columns (vault.ingest.vcf_info); none by default
    info: tuple[str, ...] = ()


@dataclass
class IngestResult:
    dataset: str
    batch: str
    qc: dict[str, Any]
    manifest: Manifest
    #: per source file, in the order written: name, sha256 and its own QC (without groups)
    sources: list[dict[str, Any]] = field(default_factory=list)
    #: files added to an existing batch: the number of the first of them among its sources
    part: int | None = None


class _Qc:
    def __init__(self, n_samples: int) -> None:
        self.records_read = 0
        self.records_written = 0
        self.variants_written = 0
        self.multiallelic_records = 0
        self.split_rows_added = 0
        self.haploid_calls = 0
        self.half_calls = 0
        self.records_without_gt = 0
        self.skipped: Counter[str] = Counter()
        self.missing_per_sample = np.zeros(n_samples, np.int64)

    @classmethod
    def total(cls, qcs: Sequence[_Qc], n_samples: int) -> _Qc:
        """The counts of several files added up (every counter, whatever it is)."""
        out = cls(n_samples)
        for qc in qcs:
            for name, value in vars(qc).items():
                mine = getattr(out, name)
                if isinstance(value, Counter):
                    mine.update(value)
                else:
                    setattr(out, name, mine + value)
        return out

    def report(self, sheet: SampleSheet, n_samples: int) -> dict[str, Any]:
        rows = self.variants_written
        total_missing = int(self.missing_per_sample.sum())
        out: dict[str, Any] = {
            "records_read": self.records_read,
            "records_written": self.records_written,
            "variants_written": rows,
            "multiallelic_records": self.multiallelic_records,
            "multiallelic_split_rows_added": self.split_rows_added,
            "haploid_calls_as_homozygous": self.haploid_calls,
            "half_calls_as_missing": self.half_calls,
            "records_without_gt_as_missing": self.records_without_gt,
            "skipped_records": dict(sorted(self.skipped.items())),
            "samples": n_samples,
            "missingness": (total_missing / (rows * n_samples)) if rows and n_samples else None,
            "groups": {},
        }
        for col, values in sheet.columns.items():
            per: dict[str, dict[str, Any]] = {}
            keys = sorted({"(unknown)" if v is None else v for v in values})
            labels = np.array(["(unknown)" if v is None else v for v in values], dtype=object)
            for k in keys:
                members = labels == k
                n = int(members.sum())
                miss = int(self.missing_per_sample[members].sum())
                # Exact: the report is stored encrypted (the batch's info file); whoever shows
                # it applies disclosure control (vault.privacy), ingest never does.
                per[k] = {"samples": n, "missingness": (miss / (rows * n)) if rows else None}
            out["groups"][col] = per
        return out


def _line_reason(code: int, col: int, chunk: vp.ParsedChunk, li: int) -> str:
    reason = vp.ERRORS[code][1]
    if col >= 0:
        reason += f" (column {col + 10}: sample #{col + 1})"
    quoted = {vp.E_CHROM: 0, vp.E_CHROM_COLON: 0, vp.E_POS: 1, vp.E_REF: 3, vp.E_ALT: 4,
              vp.E_QUAL: 5}
    if code in quoted:  # repr() shows control characters escaped
        reason += f": {chunk.field(li, quoted[code])[:60]!r}"
    return reason


class _Ingest:
    def __init__(self, paths: list[Path], dataset: str, store: Store, client: VaultClient,
                 sheet_path: Path | None, opts: IngestOptions, executor: Any = None) -> None:
        #: writes the variant files of a new batch on Dask (vault.ingest.distributed)
        self.executor = executor
        self.paths = paths
        self.path = paths[0]  # the file being read (messages)
        self.dataset = dataset
        self.store = store
        self.client = client
        self.sheet_path = sheet_path
        self.opts = opts
        self.kind = "text"
        self.header_lines = 0
        self._info_specs: dict[int, tuple[VcfHeader, vcf_info.InfoSpec]] = {}

    # -- chunk processing ----------------------------------------------------------------
    def _invalid(self, line: int, reason: str) -> InvalidInput:
        """The error for a bad record: file and line (BCF has no lines: record number)."""
        if self.kind == "bcf":
            return InvalidInput(str(self.path), None,
                                f"record {line - self.header_lines}: {reason}")
        return InvalidInput(str(self.path), line, reason)

    def _process(self, chunk: vp.ParsedChunk, first_line: int, header: VcfHeader,
                 state: OrderChecker, qc: _Qc, contigs: list[str],
                 emit: Callable[[int, dict[str, pa.Array], np.ndarray], None]) -> None:
        n = chunk.n_lines
        qc.records_read += n
        err = chunk.err
        skip = self.opts.skip_invalid
        bad = np.flatnonzero(err)
        stop = n  # without --skip-invalid: the first bad line, once the lines before it pass
        if bad.size:
            if not skip:
                stop = int(bad[0])
            else:
                for code, cnt in zip(*np.unique(err[bad], return_counts=True), strict=True):
                    qc.skipped[vp.ERRORS[int(code)][0]] += int(cnt)
        ok = err == 0
        # Contig segments (runs of valid lines with the same CHROM).
        changes = vp.chrom_changes(chunk.buf, chunk.fs, err)
        seg_bounds = [*changes.tolist(), n]
        for si in range(len(changes)):
            a, b = seg_bounds[si], min(seg_bounds[si + 1], stop)
            if a >= stop:
                break
            chrom = chunk.field(a, 0)
            lines = np.flatnonzero(ok[a:b]) + a
            if not state.enter_contig(chrom, first_line + a, lines, ok):
                continue
            if chrom not in contigs:
                contigs.append(chrom)
            state.check(chunk, lines, first_line, ok)
            self._emit_rows(chunk, lines[ok[lines]], contigs.index(chrom), emit, qc,
                            header, first_line)
        if stop < n:  # an order, duplicate or INFO error before it was raised first
            raise self._invalid(first_line + stop, _line_reason(
                int(err[stop]), int(chunk.err_col[stop]), chunk, stop))

    def _info_spec(self, header: VcfHeader) -> vcf_info.InfoSpec:
        """The kept INFO fields as ``header`` declares them (checked once per header)."""
        got = self._info_specs.get(id(header))
        if got is None or got[0] is not header:
            names = vcf_info.parse_info_option(self.opts.info)
            got = self._info_specs[id(header)] = (
                header, vcf_info.resolve(names, header, str(self.path)))
        return got[1]

    def _info(self, chunk: vp.ParsedChunk, lines: np.ndarray, header: VcfHeader,
              first_line: int, qc: _Qc) -> tuple[np.ndarray, vcf_info.ParsedInfo]:
        """The kept INFO fields of ``lines``: a bad value is an error at its line, or (with
        --skip-invalid) its record is dropped and counted."""
        spec = self._info_spec(header)
        parsed = vcf_info.parse(chunk.buf, chunk.fs, lines, chunk.n_alt[lines], spec)
        if parsed.bad.any():
            if not self.opts.skip_invalid:
                i = int(np.flatnonzero(parsed.bad)[0])
                raise self._invalid(first_line + int(lines[i]), parsed.reason(i))
            qc.skipped[vcf_info.SKIP_REASON] += int(parsed.bad.sum())
            lines = lines[~parsed.bad]
            parsed = vcf_info.parse(chunk.buf, chunk.fs, lines, chunk.n_alt[lines], spec)
        return lines, parsed

    def _emit_rows(self, chunk: vp.ParsedChunk, lines: np.ndarray, contig_index: int,
                   emit: Callable[[int, dict[str, pa.Array], np.ndarray], None],
                   qc: _Qc, header: VcfHeader | None = None, first_line: int = 0) -> None:
        """Build the Arrow columns of the valid ``lines`` (one contig run) and hand them on."""
        if lines.size == 0:
            return
        info = None
        if self.opts.info:
            if header is None:  # never silently drop the kept INFO fields
                raise AssertionError("internal error: _emit_rows needs the header for --info")
            lines, info = self._info(chunk, lines, header, first_line, qc)
            if lines.size == 0:
                return
        n_alt = chunk.n_alt
        qc.records_written += int(lines.size)
        multi = lines[n_alt[lines] > 1]
        qc.multiallelic_records += int(multi.size)
        qc.split_rows_added += int((n_alt[multi] - 1).sum())
        qc.haploid_calls += int(chunk.n_hap[lines].sum())
        qc.half_calls += int(chunk.n_half[lines].sum())
        qc.records_without_gt += int(chunk.no_gt[lines].sum())
        counts = np.diff(chunk.row_start)[lines]
        rl = np.repeat(lines, counts)  # the line of every row
        first_row = np.repeat(chunk.row_start[lines], counts)
        rows = first_row + (np.arange(rl.size) - np.repeat(np.cumsum(counts) - counts, counts))
        whole = rows.size == chunk.packed.shape[0]
        packed = chunk.packed if whole else chunk.packed[rows]
        qc.variants_written += int(rows.size)
        if packed.shape[1]:
            qc.missing_per_sample += vp.missing_per_sample(packed, qc.missing_per_sample.size)
        fs = chunk.fs
        alt_s, alt_e = vp.alt_bounds(chunk.buf, fs, n_alt, chunk.row_start,
                                     int(chunk.row_start[-1]))
        buf = chunk.buf

        def strings(starts: np.ndarray, ends: np.ndarray) -> pa.Array:
            offsets, data = vp.gather_strings(buf, starts, ends)
            return pa.StringArray.from_buffers(len(starts), pa.py_buffer(offsets),
                                               pa.py_buffer(data))

        allele_index = (rows - first_row + 1).astype(np.int16)
        allele_index[n_alt[rl] == 0] = 0
        columns = {
            "chrom": pa.array([chunk.field(int(lines[0]), 0)] * rows.size, pa.string()),
            "pos": pa.array(chunk.pos[rl]),
            "id": strings(fs[rl, 2], fs[rl, 3] - 1),
            "ref": strings(fs[rl, 3], fs[rl, 4] - 1),
            "alt": strings(alt_s[rows], alt_e[rows]),
            "qual": pa.array(chunk.qual[rl], mask=chunk.qual_null[rl]),
            "filter": strings(fs[rl, 6], fs[rl, 7] - 1),
            "allele_index": pa.array(allele_index),
            "n_alleles": pa.array(n_alt[rl].astype(np.int16)),
            "n_haploid": pa.array(chunk.n_hap[rl]),
            "n_half_call": pa.array(chunk.n_half[rl]),
        }
        if info is not None:  # after the fixed columns, in the order --info names them
            columns.update(info.columns(np.repeat(np.arange(lines.size), counts), allele_index))
        emit(contig_index, columns, packed)

    # -- the whole ingest ----------------------------------------------------------------
    def run(self) -> IngestResult:
        files = survey(self.paths)
        first = files[0]
        self.path = first.path
        samples = first.header.samples
        target = self.opts.batch
        if target is not None and self.sheet_path is not None:
            raise ConfigError("a sample sheet cannot be given with --batch: the files added to "
                              f"batch {target} carry its samples, whose groups it already has")
        for f in files:  # an undeclared or unusable --info field fails here, early
            self._info_spec(f.header)
        sheet = (read_sample_sheet(self.sheet_path, samples) if self.sheet_path
                 else SampleSheet.empty())
        check_labels(sheet, allow_identifying=self.opts.allow_identifying_columns,
                     where=str(self.sheet_path or first.path))
        bound = True  # a new dataset binds its files to their place (schema 6)
        if self.store.exists(self.dataset):
            existing = self.store.manifest(self.dataset)
            self._refuse_destroyed(existing)  # before any key upsert
            bound = existing.binding is not None
        elif target is not None:
            raise ConfigError(f"dataset {self.dataset!r} does not exist, so it has no batch "
                              f"{target}; leave out --batch to create it")
        # Keys first: a name or right that Vault refuses leaves nothing on disk.
        keyring = Keyring(self.client, self.dataset, bound=bound)
        keyring.ensure_keys()
        pseudonyms = keyring.pseudonymise(samples)  # once per batch, whatever the file count
        store = self.store
        with store.lock(self.dataset) as folder:
            manifest = store.manifest(self.dataset) if store.exists(self.dataset) else None
            if manifest is not None:
                # never build on (and re-sign) a manifest GenoVault did not sign
                signing.verify(self.client, store.root, manifest)
                self._refuse_destroyed(manifest)
                if (manifest.binding is not None) != bound:  # created meanwhile, elsewhere
                    raise ConfigError(f"dataset {self.dataset!r} was created by another "
                                      "ingest meanwhile; run this ingest again")
                self._refuse_withdrawn(manifest, pseudonyms)
            store.remove_debris(self.dataset, manifest)
            self._refuse_duplicates(files, manifest)
            if target is not None:
                if self.executor is not None:
                    raise ConfigError("--batch (adding files to an existing batch) runs on "
                                      "this machine only: leave out --dask")
                return self._add_part(folder, manifest, files, pseudonyms, keyring, target)
            # the batch's own genotypes key, checked before anything is registered
            batch_name = f"b{len(manifest.batches if manifest else []) + 1:04d}"
            batch_keyring = keyring.for_genotypes(batch_genotype_key(self.dataset, batch_name))
            batch_keyring.ensure_keys(["genotypes"])
            # the samples are registered (once for the batch) in the background while the
            # files are parsed; the batch is committed only once every one of them is
            # registered (no duplicate)
            registration = Registration(self.client, self.dataset,
                                        folder / ".pending" / _pending_name(files),
                                        manifest.uid if manifest else None, first.path)
            registration.start(pseudonyms)
            faults.point("ingest.registration_started")
            try:
                staging = self._staging(folder)
                try:
                    result = self._write_batch(folder, staging, manifest, registration,
                                               files, sheet, pseudonyms, batch_keyring)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
            except BaseException:
                registration.release()
                raise
            faults.point("ingest.committed")
            registration.done()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _staging(folder: Path) -> Path:
        # each level with its mode: mkdir(parents=True) would create ``.staging`` with the
        # process umask's (0777 under umask 0)
        (folder / ".staging").mkdir(mode=DIR_MODE, exist_ok=True)
        staging = folder / ".staging" / uuid.uuid4().hex
        staging.mkdir(mode=DIR_MODE)
        return staging

    # -- the source files ----------------------------------------------------------------
    def _refuse_duplicates(self, files: list[SourceFile], manifest: Manifest | None) -> None:
        """No file twice in one command, none whose checksum any batch already lists."""
        given: dict[str, Path] = {}
        for f in files:
            if f.checksum in given:
                raise DuplicateIngest(f"{f.path} and {given[f.checksum]} are the same file "
                                      f"(sha256 {f.checksum[:16]}…): give each file once")
            given[f.checksum] = f.path
        for b in manifest.batches if manifest else []:
            for i, s in enumerate(b.sources):
                if s.sha256 not in given:
                    continue
                when = b.ingested_at
                if i and isinstance(s, Part) and s.ingested_at:
                    when = s.ingested_at
                where = f"batch {b.batch}" + (f" (its source file #{i + 1})" if i else "")
                raise DuplicateIngest(
                    f"{given[s.sha256]}: this exact file (sha256 {s.sha256[:16]}…) was already "
                    f"ingested into dataset {self.dataset!r} as {where} on {when}; nothing to "
                    "do")

    def _parse_files(self, writer: BatchWriter, files: list[SourceFile], n_samples: int,
                     contigs: list[str], regions: BatchRegions | None,
                     check: Callable[[], None]) -> list[_Qc]:
        """Parse every file in turn and hand the rows to one writer thread (Parquet encode +
        encrypt while the next chunk is parsed, also across file boundaries: a batch's files
        flow like one file). ``check()`` runs before every chunk (it raises when the sample
        registration failed). Any failure aborts the open file. Returns a QC per file."""
        q: queue.Queue[_Rows | None] = queue.Queue(2)
        failure: list[BaseException] = []

        def write_loop() -> None:
            held: _Rows | None = None  # a few rows, written with the next ones
            try:
                while (item := q.get()) is not None:
                    if failure:
                        continue
                    if held is not None:
                        if _joinable(held, item):
                            item = _joined(held, item)
                        else:
                            writer.add(*held)
                        held = None
                    if item[2].shape[0] < _FEW_ROWS:
                        held = item
                    else:
                        writer.add(*item)
                if held is not None and not failure:
                    writer.add(*held)
            except BaseException as exc:
                failure.append(exc)
                while q.get() is not None:
                    pass

        thread = threading.Thread(target=write_loop, name="genovault-writer", daemon=True)
        thread.start()

        def emit(ci: int, cols: dict[str, pa.Array], packed: np.ndarray) -> None:
            if failure:
                raise failure[0]
            q.put((ci, cols, packed))

        name = files[0].path.name if len(files) == 1 else f"{len(files)} files"
        bar = _progress(self.opts.progress, sum(f.size for f in files), name)
        qcs: list[_Qc] = []
        parsed_all = False
        try:
            for f in files:
                qcs.append(self._parse_file(f, n_samples, contigs, regions, check, emit, bar))
            parsed_all = True
        finally:
            q.put(None)
            thread.join()
            bar.close()
            if failure or not parsed_all:
                writer.abort()  # close the open file; the caller removes the staging folder
        if failure:
            raise failure[0]
        return qcs

    def _parse_file(self, f: SourceFile, n_samples: int, contigs: list[str],
                    regions: BatchRegions | None, check: Callable[[], None],
                    emit: Callable[[int, dict[str, pa.Array], np.ndarray], None],
                    bar: Any) -> _Qc:
        source = open_source(f.path)
        chunker = source.chunker()  # text lines, or BCF records decoded natively
        header = parse_header(chunker.read_header(), str(f.path))
        if header.samples != f.header.samples:
            raise IngestError(f"{f.path}: the file changed while it was being ingested")
        self.path, self.kind, self.header_lines = f.path, source.kind, header.n_lines
        qc = _Qc(n_samples)
        state = OrderChecker(header.contigs, self.opts.skip_invalid, self._invalid, qc.skipped,
                             regions, str(f.path))
        source.on_progress(bar.update)
        first_line = header.n_lines + 1
        # a plain file whose last line has no newline may have been cut while it was
        # written or copied (a gzip or BGZF stream proves it is whole: its trailer, or the
        # BGZF end-of-file marker, is checked, so a compressor saw the text as it is)
        cut_if_unterminated = source.kind == "text"
        for buf in chunker.data_chunks():
            check()
            if cut_if_unterminated and getattr(chunker, "unterminated", False):
                raise InvalidInput(str(f.path), first_line, UNTERMINATED)  # never skipped
            # a BCF reader yields parsed chunks already (vault.ingest.bcf)
            chunk = buf if isinstance(buf, vp.ParsedChunk) else vp.parse_chunk(buf, n_samples)
            self._process(chunk, first_line, header, state, qc, contigs, emit)
            first_line += chunk.n_lines
        if cut_if_unterminated and getattr(chunker, "unterminated", False):
            # an overlong last line, skipped
            raise InvalidInput(str(f.path), first_line - 1, UNTERMINATED)
        return qc

    def _reports(self, files: list[SourceFile], qcs: list[_Qc], sheet: SampleSheet,
                 n_samples: int) -> tuple[_Qc, dict[str, Any], list[dict[str, Any]]]:
        """The QC over all files (with groups) and one entry per file (without groups)."""
        total = _Qc.total(qcs, n_samples)
        report = total.report(sheet, n_samples)
        if total.records_written == 0 and total.records_read > 0:
            raise IngestError(f"{files[0].path}{' …' if len(files) > 1 else ''}: every record "
                              f"was skipped as invalid; nothing to ingest "
                              f"({report['skipped_records']})")
        sources = [{"name": f.path.name, "sha256": f.checksum,
                    "qc": qc.report(SampleSheet.empty(), n_samples)}
                   for f, qc in zip(files, qcs, strict=True)]
        return total, report, sources

    def _refuse_destroyed(self, manifest: Manifest) -> None:
        if manifest.tombstone is not None:
            raise IngestError(
                f"dataset {self.dataset!r} was destroyed (crypto-shredded) on "
                f"{manifest.tombstone.destroyed_at}; use another dataset id")

    def _refuse_withdrawn(self, manifest: Manifest, pseudonyms: list[str]) -> None:
        """A withdrawn participant is never ingested again (unless an admin recorded renewed
        consent, see vault.keys.lifecycle.record_consent)."""
        withdrawn = manifest.withdrawn_hashes()
        if not withdrawn:
            return
        hit = [i for i, p in enumerate(pseudonyms)
               if hashlib.sha256(p.encode()).hexdigest() in withdrawn]
        if hit:
            shown = ", ".join(str(i + 10) for i in hit[:5])
            raise SampleSheetError(
                f"{self.path}: {len(hit)} sample(s) withdrew from dataset {self.dataset!r} "
                f"(VCF #CHROM columns {shown}{' …' if len(hit) > 5 else ''}); they cannot be "
                "ingested again unless an admin records renewed consent (`genovault samples "
                "consent`)")

    def _identity(self) -> Identity:
        ident = token_identity(self.client)
        # the real identity behind a minted role token (who ran the command), else the
        # token's own (a pipeline's AppRole, a user's login)
        return Identity(display_name=ident.get("on_behalf_of") or ident["display_name"],
                        entity_id=ident.get("on_behalf_of_entity") or ident["entity_id"])

    @staticmethod
    def _move_into_place(staging: Path, final: Path) -> None:
        final.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        fsync_path(staging)
        os.rename(staging, final)
        fsync_path(final.parent)

    def _write_batch(self, folder: Path, staging: Path, manifest: Manifest | None,
                     registration: Registration, files: list[SourceFile], sheet: SampleSheet,
                     pseudonyms: list[str], keyring: Keyring) -> IngestResult:
        n_samples = len(pseudonyms)
        batches = list(manifest.batches) if manifest else []
        batch = f"b{len(batches) + 1:04d}"
        offset = manifest.sample_count if manifest else 0
        bin_size = manifest.partition.bin_size if manifest else self.opts.bin_size
        contigs: list[str] = list(manifest.contigs) if manifest else []
        writer = BatchWriter(staging, keyring, n_samples, bin_size)
        samples = {"sample_index": pa.array(np.arange(offset, offset + n_samples, dtype=np.int32)),
                   "pseudonym": pa.array(pseudonyms, pa.string())}
        samples.update({k: pa.array(v, pa.string()) for k, v in sheet.columns.items()})
        samples_entry = writer.write_samples(
            pa.table(samples, schema=fmt.sample_schema(list(sheet.columns))))
        if self.executor is not None:  # one file per Dask worker (vault.ingest.distributed)
            qcs, out_files = self.executor.write_files(
                staging, files, n_samples, bin_size, contigs, keyring.keys.genotypes,
                self.dataset, self.opts, registration.check, bound=keyring.bound)
        else:
            regions = BatchRegions(bin_size) if len(files) > 1 else None
            qcs = self._parse_files(writer, files, n_samples, contigs, regions,
                                    registration.check)
            out_files = writer.close()
        # every sample registered, none a duplicate (the marker says ``complete``): only now
        # may the batch become visible
        registration.finish()
        faults.point("ingest.registered")
        _total, qc_report, sources = self._reports(files, qcs, sheet, n_samples)
        info_entry = writer.write_info({"source_name": files[0].path.name,
                                        "group_columns": list(sheet.columns), "qc": qc_report,
                                        "sources": sources})
        faults.point("ingest.info_written")
        # move into place, then commit the manifest (the only step that makes it visible)
        self._move_into_place(staging, folder / "batches" / batch)
        faults.point("ingest.batch_renamed")
        placed = _placer(f"batches/{batch}/")
        entry = Batch(
            batch=batch, sample_offset=offset, n_samples=n_samples,
            source=_source(files[0]),
            parts=[Part(**_source(f).model_dump()) for f in files[1:]],
            absent_sites="hom_ref" if self.opts.absent_sites_hom_ref else "not_assessed",
            ingested_at=utcnow(),
            ingested_by=self._identity(),
            samples_file=FileEntry(**placed(samples_entry)),
            info_file=FileEntry(**placed(info_entry)),
            variant_files=[VariantFile(**placed(f)) for f in out_files],
            genotype_key=keyring.keys.genotypes,
            sample_list_sha256=_list_digest(pseudonyms),
            sample_set_sha256=_list_digest(sorted(pseudonyms)),
        )
        now = utcnow()
        new_manifest = Manifest(
            dataset=self.dataset,
            uid=registration.uid,
            created_at=manifest.created_at if manifest else now,
            updated_at=now,
            keys=manifest.keys if manifest else DatasetKeys.for_dataset(self.dataset).as_dict(),
            partition=Partition(bin_size=bin_size),
            sample_count=offset + n_samples,
            contigs=contigs,
            batches=[*batches, entry],
            withdrawn=list(manifest.withdrawn) if manifest else [],
            consents=list(manifest.consents) if manifest else [],
            binding=(manifest.binding if manifest else
                     "transit-derived-v1" if keyring.bound else None),
        )
        new_manifest = signing.commit_signed(self.store, self.dataset, new_manifest, self.client,
                                             manifest)
        return IngestResult(self.dataset, batch, qc_report, new_manifest, sources)

    # -- a later part of an existing batch -----------------------------------------------
    def _add_part(self, folder: Path, manifest: Manifest | None, files: list[SourceFile],
                  pseudonyms: list[str], keyring: Keyring, target: str) -> IngestResult:
        """Add ``files`` to batch ``target``: same samples in the same order, records only in
        (contig, bin) partitions the batch has none in; its own folder ``<batch>.pNNNN``
        (the number of its first file among the batch's sources), one manifest commit."""
        if manifest is None:
            raise ConfigError(f"dataset {self.dataset!r} does not exist, so it has no batch "
                              f"{target}; leave out --batch to create it")
        index = next((i for i, b in enumerate(manifest.batches) if b.batch == target), None)
        if index is None:
            raise ConfigError(f"dataset {self.dataset!r} has no batch {target!r} (it has "
                              f"{', '.join(b.batch for b in manifest.batches) or 'none'})")
        batch = manifest.batches[index]
        self._check_part_samples(batch, pseudonyms)
        if self.opts.absent_sites_hom_ref and not batch.hom_ref_when_absent:
            raise ConfigError(f"batch {target} was ingested without --absent-sites-hom-ref; "
                              "files added to it take the batch's setting")
        gkeys = keyring.for_genotypes(batch.genotype_key) if batch.genotype_key else keyring
        gkeys.ensure_keys(["genotypes"])
        part_no = len(batch.sources) + 1
        staging = self._staging(folder)
        try:
            return self._write_part(folder, staging, manifest, index, files, gkeys, part_no)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _check_part_samples(self, batch: Batch, pseudonyms: list[str]) -> None:
        where = f"{self.path}: cannot be added to batch {batch.batch}"
        if batch.sample_list_sha256 is None or batch.sample_set_sha256 is None:
            raise IngestError(f"{where}: the batch was written by an older GenoVault that kept "
                              "no fingerprint of its sample list, so the files' samples cannot "
                              "be checked against it")
        if len(pseudonyms) != batch.n_samples:
            compacted = f"/{batch.batch}.c" in batch.samples_file.path
            raise SampleSheetError(
                f"{where}: it has {len(pseudonyms)} sample(s), the batch {batch.n_samples}"
                + (" (the batch was compacted after a withdrawal)" if compacted else "")
                + "; a batch's files carry the same samples in the same order")
        if _list_digest(pseudonyms) == batch.sample_list_sha256:
            return
        if _list_digest(sorted(pseudonyms)) == batch.sample_set_sha256:
            raise SampleSheetError(f"{where}: it has the batch's samples in a different order; "
                                   "reorder it with `bcftools view -S samples.txt`")
        raise SampleSheetError(f"{where}: it has other samples than the batch (the same "
                               "number, not the same ids); a batch's files carry the same "
                               "samples in the same order")

    def _write_part(self, folder: Path, staging: Path, manifest: Manifest, index: int,
                    files: list[SourceFile], keyring: Keyring, part_no: int) -> IngestResult:
        batch = manifest.batches[index]
        n_samples = batch.n_samples
        bin_size = manifest.partition.bin_size
        contigs = list(manifest.contigs)
        taken: dict[str, set[int]] = {}
        for vf in batch.variant_files:
            taken.setdefault(contigs[vf.contig], set()).add(vf.bin)
        writer = BatchWriter(staging, keyring, n_samples, bin_size)
        regions = BatchRegions(bin_size, taken, batch.batch)
        qcs = self._parse_files(writer, files, n_samples, contigs, regions, lambda: None)
        out_files = writer.close()
        total, qc_report, sources = self._reports(files, qcs, SampleSheet.empty(), n_samples)
        # no groups here (the labels are in the batch's encrypted samples table): the
        # missing calls per sample let a reader add this part to the batch's group QC
        info_entry = writer.write_info({
            "source_name": files[0].path.name, "group_columns": [], "qc": qc_report,
            "sources": sources,
            batchinfo.MISSING_PER_SAMPLE: total.missing_per_sample.tolist()})
        faults.point("ingest.info_written")
        name = f"{batch.batch}.p{part_no:04d}"
        self._move_into_place(staging, folder / "batches" / name)
        faults.point("ingest.batch_renamed")
        placed = _placer(f"batches/{name}/")
        now = utcnow()
        who = self._identity()
        parts = [Part(**_source(f).model_dump(), ingested_at=now, ingested_by=who,
                      info_file=FileEntry(**placed(info_entry)) if i == 0 else None)
                 for i, f in enumerate(files)]
        updated = batch.model_copy(update={
            "variant_files": [*batch.variant_files, *(VariantFile(**placed(f))
                                                      for f in out_files)],
            "parts": [*batch.parts, *parts]})
        batches = list(manifest.batches)
        batches[index] = updated
        new_manifest = manifest.model_copy(update={
            "schema_version": fmt.SCHEMA_VERSION, "updated_at": now, "contigs": contigs,
            "batches": batches})
        new_manifest = signing.commit_signed(self.store, self.dataset, new_manifest, self.client,
                                             manifest)
        return IngestResult(self.dataset, batch.batch, qc_report, new_manifest, sources,
                            part=part_no)


#: rows of one contig as the parser emits them: contig index, site columns, packed genotypes
_Rows = tuple[int, dict[str, pa.Array], np.ndarray]
#: fewer rows than this are written together with the next rows of the same contig: the line
#: that straddles two inflated chunks is parsed as a chunk of its own, and would otherwise
#: become a Parquet row group of one row
_FEW_ROWS = 64


def _joinable(first: _Rows, second: _Rows) -> bool:
    """Same contig, same columns of the same types (else the writer sees them apart, and
    refuses INFO columns that differ between the files of a batch with its own message)."""
    return first[0] == second[0] and [(k, a.type) for k, a in first[1].items()] == \
        [(k, a.type) for k, a in second[1].items()]


def _joined(first: _Rows, second: _Rows) -> _Rows:
    """Two runs of rows of the same contig as one (``first``'s rows before ``second``'s)."""
    cols = {name: pa.concat_arrays([arr, second[1][name]]) for name, arr in first[1].items()}
    return first[0], cols, np.concatenate([first[2], second[2]])


def _source(f: SourceFile) -> Source:
    return Source(sha256=f.checksum, bytes=f.size, format=f.kind,
                  fileformat=f.header.fileformat)


def _placer(prefix: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def placed(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "path": prefix + entry["path"]}

    return placed


def _list_digest(pseudonyms: list[str]) -> str:
    return hashlib.sha256("\n".join(pseudonyms).encode("ascii")).hexdigest()


def _pending_name(files: list[SourceFile]) -> str:
    """The pending-registration marker's name: the source checksum (one file), else a
    checksum over the files' sorted checksums (the same files in any order: the same name)."""
    return pending_name([f.checksum for f in files])


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool | None, total: int, name: str) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"ingest {name}", leave=False)


def write_file_variants(f: SourceFile, staging: Path, keyring: Keyring, n_samples: int,
                        bin_size: int, contigs: list[str], opts: IngestOptions,
                        regions: BatchRegions | None
                        ) -> tuple[_Qc, list[dict[str, Any]], list[tuple[str, str]] | None]:
    """Parse one file and write its variant files into ``staging`` (the step a Dask worker
    runs for one file of a batch, vault.ingest.distributed): its QC, file entries and INFO
    columns (name, type; None: no rows). ``contigs`` grows by the contigs met that it does
    not hold yet. On failure the open file is closed; the caller removes ``staging``."""
    writer = BatchWriter(staging, keyring, n_samples, bin_size)
    one = _Ingest([f.path], keyring.dataset, None, None, None,  # type: ignore[arg-type]
                  opts)
    qcs = one._parse_files(writer, [f], n_samples, contigs, regions, lambda: None)
    entries = writer.close()
    info = None if writer.info is None else [(n, str(t)) for n, t in writer.info]
    return qcs[0], entries, info


def ingest(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], dataset: str, *,
           client: VaultClient, store: Store, sample_sheet: Path | None = None,
           options: IngestOptions | None = None, executor: Any = None) -> IngestResult:
    """Ingest one VCF/BCF file, or several with the same samples in the same order, as one
    new batch of ``dataset`` (created if needed); with ``options.batch``, add them to that
    existing batch instead. With ``executor`` (a vault.ingest.distributed.DaskIngest), each
    file is parsed, encoded and encrypted on a Dask worker; the rest runs here as always."""
    check_dataset_id(dataset)
    opts = options or IngestOptions()
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    if not paths:
        raise ConfigError("nothing to ingest: give at least one VCF/BCF file")
    if opts.batch is not None and not BATCH_RE.fullmatch(opts.batch):
        raise ConfigError(f"invalid batch name {opts.batch[:40]!r}: batches are named b0001, "
                          "b0002, … (`genovault datasets show DATASET` lists them)")
    reuse_freed_memory()
    with collector_on_new_objects():
        try:
            return _Ingest(paths, dataset, store, client, sample_sheet, opts, executor).run()
        except OSError as exc:  # a full disk, a quota, a failing device (pyarrow's too)
            raise StoreError(
                f"ingest into dataset {dataset!r} failed on a write or read error ({exc}); "
                "free space or fix the file system, then rerun the same command (it removes "
                "what this one left; an ingest that failed before its commit left nothing "
                "visible, one that failed after it is reported as already ingested)") from exc


BATCH_RE = re.compile(r"b[0-9]{4,}")
