"""Ingest: VCF/BCF -> one new encrypted batch of a dataset, committed atomically.

Stages overlap: BGZF blocks are inflated on a thread pool ahead of the parser, the numba
parser runs on both cores, and Parquet encoding + encryption run on a writer thread.

Nothing of an ingest becomes visible before its last step, the atomic replacement of the
dataset's manifest. A failure (bad input, Vault down, a crash, a kill) at any earlier point
leaves the dataset as it was; the next write removes the debris. Vault unreachable means
the ingest fails: nothing is ever written in plaintext.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import numpy as np
import pyarrow as pa

from vault.config import check_dataset_id
from vault.errors import DuplicateIngest, IngestError, InvalidInput, SampleSheetError
from vault.ingest import vcfparse as vp
from vault.ingest.header import VcfHeader, parse_header
from vault.ingest.memory import reuse_freed_memory
from vault.ingest.order import OrderChecker
from vault.ingest.samplesheet import SampleSheet, read_sample_sheet
from vault.ingest.source import LineChunker, open_source
from vault.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store, utcnow
from vault.store.writer import BatchWriter, fsync_path, sha256_file
from vault.vaultclient import token_identity

QC_MIN_GROUP = 5  # groups smaller than this are suppressed in the stored QC report


@dataclass
class IngestOptions:
    skip_invalid: bool = False
    absent_sites_hom_ref: bool = False
    bin_size: int = fmt.DEFAULT_BIN_SIZE
    progress: bool | None = None  # None: only when stderr is a terminal


@dataclass
class IngestResult:
    dataset: str
    batch: str
    qc: dict[str, Any]
    manifest: dict[str, Any]


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
                # The report is stored in the plaintext manifest: a group this small would
                # single out individuals, so its size and missingness are suppressed.
                if n < QC_MIN_GROUP:
                    per[k] = {"samples": f"<{QC_MIN_GROUP}", "missingness": None}
                else:
                    per[k] = {"samples": n, "missingness": (miss / (rows * n)) if rows else None}
            out["groups"][col] = per
        return out


def _line_reason(code: int, col: int, chunk: vp.ParsedChunk, li: int) -> str:
    reason = vp.ERRORS[code][1]
    if col >= 0:
        reason += f" (column {col + 10}: sample #{col + 1})"
    if code in (vp.E_REF, vp.E_ALT, vp.E_POS, vp.E_QUAL):
        k = {vp.E_POS: 1, vp.E_REF: 3, vp.E_ALT: 4, vp.E_QUAL: 5}[code]
        reason += f": {chunk.field(li, k)[:60]!r}"
    return reason


class _Ingest:
    def __init__(self, path: Path, dataset: str, store: Store, client: hvac.Client,
                 sheet_path: Path | None, opts: IngestOptions) -> None:
        self.path = path
        self.dataset = dataset
        self.store = store
        self.client = client
        self.sheet_path = sheet_path
        self.opts = opts
        self.kind = "text"
        self.header_lines = 0

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
        if bad.size:
            if not skip:
                li = int(bad[0])
                raise self._invalid(first_line + li, _line_reason(
                    int(err[li]), int(chunk.err_col[li]), chunk, li))
            for code, cnt in zip(*np.unique(err[bad], return_counts=True), strict=True):
                qc.skipped[vp.ERRORS[int(code)][0]] += int(cnt)
        ok = err == 0
        # Contig segments (runs of valid lines with the same CHROM).
        changes = vp.chrom_changes(chunk.buf, chunk.fs, err)
        seg_bounds = [*changes.tolist(), n]
        for si in range(len(changes)):
            a, b = seg_bounds[si], seg_bounds[si + 1]
            chrom = chunk.field(a, 0)
            lines = np.flatnonzero(ok[a:b]) + a
            if not state.enter_contig(chrom, first_line + a, lines, ok):
                continue
            if chrom not in contigs:
                contigs.append(chrom)
            state.check(chunk, lines, first_line, ok)
            self._emit_rows(chunk, lines[ok[lines]], contigs.index(chrom), emit, qc)

    def _emit_rows(self, chunk: vp.ParsedChunk, lines: np.ndarray, contig_index: int,
                   emit: Callable[[int, dict[str, pa.Array], np.ndarray], None],
                   qc: _Qc) -> None:
        """Build the Arrow columns of the valid ``lines`` (one contig run) and hand them on."""
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
        emit(contig_index, columns, packed)

    # -- the whole ingest ----------------------------------------------------------------
    def run(self) -> IngestResult:
        path = self.path
        source = open_source(path)
        checksum = sha256_file(path)
        store = self.store
        with store.lock(self.dataset) as folder:
            manifest = store.manifest(self.dataset) if store.exists(self.dataset) else None
            store.remove_debris(self.dataset, manifest)
            for b in (manifest or {}).get("batches", []):
                if b["source"]["sha256"] == checksum:
                    raise DuplicateIngest(
                        f"{path}: this exact file (sha256 {checksum[:16]}…) was already "
                        f"ingested into dataset {self.dataset!r} as batch {b['batch']} on "
                        f"{b['ingested_at']}; nothing to do")
            chunker = LineChunker(source.raw_chunks(), path)
            header = parse_header(chunker.read_header(), str(path))
            self.kind, self.header_lines = source.kind, header.n_lines
            sheet = (read_sample_sheet(self.sheet_path, header.samples) if self.sheet_path
                     else SampleSheet.empty())
            keyring = Keyring(self.client, self.dataset)
            keyring.ensure_keys()
            pseudonyms = keyring.pseudonymise(header.samples)
            self._check_new_samples(folder, manifest, pseudonyms)
            staging = folder / ".staging" / uuid.uuid4().hex
            staging.mkdir(parents=True)
            try:
                result = self._write_batch(folder, staging, manifest, header, sheet, pseudonyms,
                                           keyring, chunker, source, checksum)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return result

    def _check_new_samples(self, folder: Path, manifest: dict[str, Any] | None,
                           pseudonyms: list[str]) -> None:
        mine = {p: i for i, p in enumerate(pseudonyms)}
        for b in (manifest or {}).get("batches", []):
            pfile = folder / b["pseudonyms_file"]["path"]
            if sha256_file(pfile) != b["pseudonyms_file"]["sha256"]:
                raise IngestError(f"{pfile}: checksum mismatch; the dataset is damaged "
                                  "(run `genovault datasets verify`)")
            clash = sorted(mine[p] + 10 for p in json.loads(pfile.read_text()) if p in mine)
            if clash:
                shown = ", ".join(map(str, clash[:5]))
                raise SampleSheetError(
                    f"{self.path}: {len(clash)} sample(s) are already in dataset "
                    f"{self.dataset!r} (batch {b['batch']}); VCF #CHROM columns {shown}"
                    f"{' …' if len(clash) > 5 else ''}. A sample can be ingested only once.")

    def _write_batch(self, folder: Path, staging: Path, manifest: dict[str, Any] | None,
                     header: VcfHeader, sheet: SampleSheet, pseudonyms: list[str],
                     keyring: Keyring, chunker: LineChunker, source: Any,
                     checksum: str) -> IngestResult:
        n_samples = len(header.samples)
        batches = list((manifest or {}).get("batches", []))
        batch = f"b{len(batches) + 1:04d}"
        offset = int((manifest or {}).get("sample_count", 0))
        bin_size = int((manifest or {}).get("partition", {}).get("bin_size", self.opts.bin_size))
        contigs: list[str] = list((manifest or {}).get("contigs", []))
        writer = BatchWriter(staging, keyring, n_samples, bin_size)
        samples = {"sample_index": pa.array(np.arange(offset, offset + n_samples, dtype=np.int32)),
                   "pseudonym": pa.array(pseudonyms, pa.string())}
        samples.update({k: pa.array(v, pa.string()) for k, v in sheet.columns.items()})
        samples_entry = writer.write_samples(
            pa.table(samples, schema=fmt.sample_schema(list(sheet.columns))))
        (staging / "pseudonyms.json").write_text(json.dumps(sorted(pseudonyms)))
        qc = _Qc(n_samples)
        state = OrderChecker(header.contigs, self.opts.skip_invalid, self._invalid, qc.skipped)

        # writer thread: Parquet encode + encrypt while the next chunk is parsed
        q: queue.Queue[tuple[int, dict[str, pa.Array], np.ndarray] | None] = queue.Queue(2)
        failure: list[BaseException] = []

        def write_loop() -> None:
            try:
                while (item := q.get()) is not None:
                    if not failure:
                        writer.add(*item)
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

        bar = _progress(self.opts.progress, source.size or os.path.getsize(self.path),
                        self.path.name)
        source.on_progress(bar.update)
        first_line = header.n_lines + 1
        parsed_all = False
        try:
            for buf in chunker.data_chunks():
                chunk = vp.parse_chunk(buf, n_samples)
                self._process(chunk, first_line, header, state, qc, contigs, emit)
                first_line += chunk.n_lines
            parsed_all = True
        finally:
            q.put(None)
            thread.join()
            bar.close()
            if failure or not parsed_all:
                writer.abort()  # close the open file; the caller removes the staging folder
        if failure:
            raise failure[0]
        files = writer.close()
        qc_report = qc.report(sheet, n_samples)
        if qc.records_written == 0 and qc.records_read > 0:
            raise IngestError(f"{self.path}: every record was skipped as invalid; nothing "
                              f"to ingest ({qc_report['skipped_records']})")
        # move into place, then commit the manifest (the only step that makes it visible)
        final = folder / "batches" / batch
        final.parent.mkdir(exist_ok=True)
        fsync_path(staging)
        os.rename(staging, final)
        fsync_path(final.parent)
        prefix = f"batches/{batch}/"
        for f in files:
            f["path"] = prefix + f["path"]
        samples_entry["path"] = prefix + samples_entry["path"]
        ident = token_identity(self.client)
        entry = {
            "batch": batch,
            "sample_offset": offset,
            "n_samples": n_samples,
            "source": {"name": self.path.name, "sha256": checksum,
                       "bytes": self.path.stat().st_size, "format": source.kind,
                       "fileformat": header.fileformat},
            "absent_sites": "hom_ref" if self.opts.absent_sites_hom_ref else "not_assessed",
            "ingested_at": utcnow(),
            "ingested_by": {k: ident.get(k) for k in ("display_name", "entity_id")},
            "group_columns": list(sheet.columns),
            "samples_file": samples_entry,
            "pseudonyms_file": {"path": prefix + "pseudonyms.json",
                                "sha256": sha256_file(final / "pseudonyms.json")},
            "variant_files": files,
            "qc": qc_report,
        }
        now = utcnow()
        new_manifest = {
            "format": fmt.FORMAT_NAME,
            "schema_version": fmt.SCHEMA_VERSION,
            "dataset": self.dataset,
            "created_at": (manifest or {}).get("created_at", now),
            "updated_at": now,
            "keys": keyring.keys.as_dict(),
            "partition": {"bin_size": bin_size, "by": ["contig", "position_bin"]},
            "sample_count": offset + n_samples,
            "contigs": contigs,
            "batches": [*batches, entry],
        }
        self.store.commit(self.dataset, new_manifest)
        return IngestResult(self.dataset, batch, qc_report, new_manifest)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool | None, total: int, name: str) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty() and not os.environ.get("GENOVAULT_NO_PROGRESS")
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=f"ingest {name}", leave=False)


def ingest(path: Path, dataset: str, *, client: hvac.Client, sample_sheet: Path | None = None,
           store: Store | None = None, options: IngestOptions | None = None) -> IngestResult:
    """Ingest one VCF/BCF file as a new batch of ``dataset`` (created if needed)."""
    check_dataset_id(dataset)
    reuse_freed_memory()
    return _Ingest(Path(path), dataset, store or Store(), client, sample_sheet,
                   options or IngestOptions()).run()
