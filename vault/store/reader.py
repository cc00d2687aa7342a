"""The read API: decrypted genotype blocks of a dataset, for a region and a projection.

This is what the kernels and the query service consume. Only the projected columns' keys
are requested from Vault (Parquet Modular Encryption fetches a column key only when that
column is read); genotypes are never decrypted unless asked for.

All batches of a dataset are presented as one cohort: samples are numbered batch after
batch, and a variant absent from a batch's files is *not assessed* for that batch's samples
(code 3, missing, and ``assessed[row, batch]`` is False) unless that batch was ingested with
``--absent-sites-hom-ref`` (then code 0 and ``assessed`` True).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kernels.jit import jit
from vault.errors import ConfigError, DatasetNotFound, IntegrityError, VaultError
from vault.keys.kms import Keyring
from vault.store import batchinfo
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.format import packed_bytes
from vault.store.fsutil import parquet_tail_sha256, sha256_file
from vault.store.manifest import Batch, FileEntry

_REGION_RE = re.compile(r"^(?P<chrom>[^:]+)(?::(?P<start>[\d,]+)?-?(?P<end>[\d,]+)?)?$")


@dataclass(frozen=True)
class Region:
    """A 1-based, inclusive genomic interval; ``end`` None means to the end of the contig."""

    chrom: str
    start: int = 1
    end: int | None = None

    @property
    def length(self) -> int | None:
        """Bases covered (None for an open end: the rest of the contig)."""
        return None if self.end is None else self.end - self.start + 1

    @classmethod
    def parse(cls, text: str) -> Region:
        m = _REGION_RE.match(text.strip())
        if not m:
            raise ConfigError(f"invalid region {text!r}: use CHROM, CHROM:START-END or "
                              "CHROM:START-")
        start = int(m.group("start").replace(",", "")) if m.group("start") else 1
        end = int(m.group("end").replace(",", "")) if m.group("end") else None
        if end is not None and end < start:
            raise ConfigError(f"invalid region {text!r}: end is before start")
        return cls(m.group("chrom"), start, end)


@dataclass
class GenotypeBlock:
    """One partition's variants for the whole cohort."""

    contig: str
    sites: pa.Table
    packed: np.ndarray | None
    n_samples: int
    assessed: np.ndarray
    batches: list[str] = field(default_factory=list)

    @property
    def n_variants(self) -> int:
        return int(self.sites.num_rows)


@jit()
def _place_batch(dst: np.ndarray, src: np.ndarray, row_map: np.ndarray, offset: int,
                 n: int, absent_code: int) -> None:
    """Copy a batch's codes into columns offset..offset+n of dst; rows it lacks get absent_code."""
    present = np.zeros(dst.shape[0], np.bool_)
    for i in range(row_map.shape[0]):
        present[row_map[i]] = True
    for m in range(dst.shape[0]):
        if present[m]:
            continue
        for s in range(n):
            t = offset + s
            sh = 2 * (t & 3)
            dst[m, t >> 2] = (dst[m, t >> 2] & ~np.uint8(3 << sh)) | np.uint8(absent_code << sh)
    for i in range(row_map.shape[0]):
        m = row_map[i]
        for s in range(n):
            code = (src[i, s >> 2] >> (2 * (s & 3))) & 3
            t = offset + s
            sh = 2 * (t & 3)
            dst[m, t >> 2] = (dst[m, t >> 2] & ~np.uint8(3 << sh)) | np.uint8(code << sh)


def packed_from_column(col: pa.ChunkedArray | pa.Array, n_rows: int, n_samples: int) -> np.ndarray:
    """The fixed-size binary genotype column as a (rows, ceil(n/4)) uint8 array."""
    width = packed_bytes(n_samples)
    if n_samples == 0:
        return np.zeros((n_rows, 0), np.uint8)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise IntegrityError("null genotype row in a variant file")
    buf = arr.buffers()[1]
    data = np.frombuffer(buf, np.uint8, count=(arr.offset + len(arr)) * width)
    return data[arr.offset * width:].reshape(len(arr), width)


@jit(parallel=True)
def _select_packed(src: np.ndarray, keep_idx: np.ndarray, out: np.ndarray) -> None:
    """out[i] = the codes of samples keep_idx of src[i], packed in order (out zeroed)."""
    for i in numba.prange(src.shape[0]):
        for j in range(keep_idx.size):
            s = keep_idx[j]
            code = (src[i, s >> 2] >> (2 * (s & 3))) & 3
            out[i, j >> 2] |= np.uint8(code << (2 * (j & 3)))


def select_samples(packed: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray:
    """Packed codes of the samples where ``keep`` (bool, (n,)) is True, repacked in order
    (the padding of the last byte is 0, as written)."""
    rows = packed.shape[0]
    if n == 0:
        return packed
    keep_idx = np.flatnonzero(np.asarray(keep, np.bool_)[:n]).astype(np.int64)
    out = np.zeros((rows, packed_bytes(keep_idx.size)), np.uint8)
    if rows and keep_idx.size:
        _select_packed(np.ascontiguousarray(packed), keep_idx, out)
    return out


class DatasetReader:
    """Decrypting reader of one committed dataset (as of its manifest when opened).

    The manifest must pass :func:`vault.keys.signing.verify` (signature, version anchor), and
    each file must match the manifest's checksum for its path before it is decrypted (so a
    file moved or swapped within the store is refused). Withdrawn participants are left out
    of everything the reader returns (``samples``, ``n_samples``, genotype blocks), exactly as
    if they had never been ingested.
    """

    def __init__(self, store: Store, dataset: str, keyring: Keyring) -> None:
        from vault.keys.signing import AnchorUnreachable, verify

        self.store = store
        self.dataset = dataset
        self.manifest = store.manifest(dataset)
        if self.manifest.tombstone is not None:
            raise DatasetNotFound(f"dataset {dataset!r} was destroyed (crypto-shredded) on "
                                  f"{self.manifest.tombstone.destroyed_at}")
        self.dir = store.dataset_dir(dataset)
        self.keyring = keyring
        #: True while the version anchor could not be checked (Vault unreachable): checked
        #: again before any file is decrypted (which needs Vault anyway)
        self._anchor_pending = False
        try:
            verify(keyring.client, store.root, self.manifest)
        except AnchorUnreachable:
            self._anchor_pending = True
        self._entries = {f.path: f for f in self.manifest.files()}
        self._hashed: set[str] = set()
        #: bound datasets: files whose keys were unwrapped ahead (Keyring.prefetch)
        self._order = list(self._entries)
        self._at = {rel: i for i, rel in enumerate(self._order)}
        #: samples tables are unwrapped ahead only with samples tables, variant files only
        #: with variant files: a reader that needs only the samples (a query whose counts
        #: come from Dask workers) unwraps no genotype key
        self._samples_files = {b.samples_file.path for b in self.manifest.batches}
        self._ahead: set[str] = set()
        self._keep: list[np.ndarray | None] = [None] * len(self.manifest.batches)
        self._live_n = [b.n_samples for b in self.manifest.batches]
        withdrawn = self.manifest.withdrawn_hashes()
        if withdrawn:
            for i, b in enumerate(self.manifest.batches):
                ps = self._read(b.samples_file.path, ["pseudonym"]).column(
                    "pseudonym").to_pylist()
                keep = np.array([hashlib.sha256(p.encode()).hexdigest() not in withdrawn
                                 for p in ps], np.bool_).reshape(len(ps))
                if not keep.all():
                    self._keep[i] = keep
                    self._live_n[i] = int(keep.sum())
        self._live_offset = [int(x) for x in np.cumsum([0, *self._live_n])[:-1]]
        self._info_types: dict[str, pa.DataType] | None = None
        self._info_conflicts: list[str] = []

    @property
    def n_samples(self) -> int:
        return int(sum(self._live_n))

    @property
    def withdrawn_count(self) -> int:
        return self.manifest.sample_count - self.n_samples

    @property
    def contigs(self) -> list[str]:
        return list(self.manifest.contigs)

    @property
    def batches(self) -> list[Batch]:
        return list(self.manifest.batches)

    # -- files ---------------------------------------------------------------------------
    def _open(self, rel: str) -> pq.ParquetFile:
        self._check_file(rel)  # hashing needs no key: outside the keyring's lock
        with self.keyring.io_lock:
            return self._open_locked(rel)

    def _check_file(self, rel: str) -> None:
        """The file at ``rel`` is the one the signed manifest lists there, checked once per
        reader, before anything of it is decrypted: its size and the SHA-256 of its Parquet
        tail (schema 5; the tail holds the file's random AAD, under which AES-GCM
        authenticates every page and header as it is decrypted), or of the whole file for
        entries written before."""
        path = self.dir / rel
        if not path.is_file():
            raise IntegrityError(f"{path}: listed in the manifest but missing; the dataset is "
                                 "damaged (run `genovault datasets verify`)")
        if rel not in self._hashed:
            entry = self._entries.get(rel)
            if entry is None or path.stat().st_size != entry.bytes or \
                    _digest(path, entry) != (entry.tail_sha256 or entry.sha256):
                raise IntegrityError(f"{path}: does not match the signed manifest's checksum "
                                     "for this place (moved, swapped or modified file); "
                                     "refusing to decrypt it")
            self._hashed.add(rel)

    def _open_locked(self, rel: str) -> pq.ParquetFile:
        path = self.dir / rel  # _open checked it against the manifest
        try:
            entry = self._entries.get(rel)
            if entry is not None and entry.file_id is not None and rel not in self._ahead:
                self._unwrap_ahead(rel)
            props = self.keyring.decryption_properties(
                str(path), entry.file_id if entry is not None else None)
            pf = pq.ParquetFile(str(path), decryption_properties=props)
            if self._anchor_pending:
                from vault.keys.signing import verify

                verify(self.keyring.client, self.store.root, self.manifest)
                self._anchor_pending = False
            return pf
        except VaultError:
            raise
        except (OSError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
            raise IntegrityError(f"{path}: cannot be decrypted or parsed ({_short(exc)}); the "
                                 "file or its key material is damaged, or was encrypted under "
                                 "other keys") from exc

    #: files (in manifest order from the one opened) whose keys one prefetch unwraps
    UNWRAP_AHEAD = 64

    def _unwrap_ahead(self, rel: str) -> None:
        """A bound file's keys are its own (no KEK is shared between files), so each file
        would cost a Transit call per key: unwrap those of this file and the next files of
        its kind (samples tables, or variant files) in manifest order (how partitions are
        read) in one batch call per key instead."""
        kind = rel in self._samples_files
        window = [r for r in self._order[self._at[rel]:]
                  if r not in self._ahead and (r in self._samples_files) == kind]
        window = window[:self.UNWRAP_AHEAD]
        self.keyring.prefetch([(str(self.dir / r), self._entries[r].file_id or "")
                               for r in window])
        self._ahead.update(window)

    def _read(self, rel: str, columns: Sequence[str] | None, start: int = 1,
              end: int | None = None,
              absent: Mapping[str, pa.DataType] | None = None) -> pa.Table:
        """Decrypt ``columns`` (None: every column) of one file, rows within [start, end].

        A column of ``absent`` that the file does not have comes back as nulls of that type
        (an INFO column that an older batch was ingested without)."""
        self._check_file(rel)  # outside the lock: another thread may decrypt meanwhile
        with self.keyring.io_lock:  # see Keyring.io_lock
            return self._read_locked(rel, columns, start, end, absent)

    def _read_locked(self, rel: str, columns: Sequence[str] | None, start: int,
                     end: int | None, absent: Mapping[str, pa.DataType] | None) -> pa.Table:
        pf = self._open(rel)
        if columns is None:
            columns = pf.schema_arrow.names
        if absent:
            names = set(pf.schema_arrow.names)
            fill = [c for c in columns if c not in names and c in absent]
            if fill:
                table = self._read(rel, [c for c in columns if c not in fill], start, end)
                for c in fill:
                    table = table.append_column(pa.field(c, absent[c]),
                                                pa.nulls(table.num_rows, absent[c]))
                return table.select(list(columns))
        try:
            if start > 1 or end is not None:
                groups, inside = self._row_groups(pf, start, end)
                # "pos" once: a duplicate field makes table.column("pos") raise KeyError
                wanted = list(dict.fromkeys([*columns, "pos"]))
                table = pf.read_row_groups(groups, columns=wanted) \
                    if groups else pf.schema_arrow.empty_table().select(wanted)
                if not inside:  # some rows of the groups read lie outside [start, end]
                    pos = table.column("pos")
                    mask = pc.greater_equal(pos, start)
                    if end is not None:
                        mask = pc.and_(mask, pc.less_equal(pos, end))
                    table = table.filter(mask)
                table = table.select(list(columns))
            else:
                table = pf.read(columns=list(columns))
        except VaultError:
            raise
        except (OSError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
            raise IntegrityError(f"{self.dir / rel}: decryption failed ({_short(exc)}); the file "
                                 "was modified or is damaged") from exc
        return table

    @staticmethod
    def _row_groups(pf: pq.ParquetFile, start: int, end: int | None) -> tuple[list[int], bool]:
        """Row groups that may hold positions in [start, end], and whether every row of
        them lies inside (then no row filter is needed: a whole partition is read without
        copying its genotypes once more)."""
        idx = pf.schema_arrow.get_field_index("pos")
        out = []
        inside = True
        for g in range(pf.metadata.num_row_groups):
            st = pf.metadata.row_group(g).column(idx).statistics
            if st is None or not st.has_min_max:
                out.append(g)
                inside = False
                continue
            if st.max < start or (end is not None and st.min > end):
                continue
            out.append(g)
            inside = inside and st.min >= start and (end is None or st.max <= end)
        return out, inside

    # -- samples -------------------------------------------------------------------------
    def samples(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The cohort's samples table (pseudonyms and grouping columns), batch after batch."""
        tables = []
        for i, b in enumerate(self.batches):
            t = self._read(b.samples_file.path, None) if columns is None \
                else self._read_samples_cols(b, columns)
            keep = self._keep[i]
            tables.append(t if keep is None else t.filter(pa.array(keep)))
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="default")

    def group_columns(self) -> list[str]:
        """Grouping columns of the cohort (union over batches, first seen first)."""
        out: dict[str, None] = {}
        for b in self.batches:
            out.update(dict.fromkeys(self._sample_columns(b)))
        return list(out)

    def _sample_columns(self, batch: Batch) -> list[str]:
        with self.keyring.io_lock:
            names = self._open(batch.samples_file.path).schema_arrow.names
        return [c for c in names if c not in fmt.SAMPLE_BASE_COLUMNS]

    def batch_sources(self, batch: Batch) -> dict[str, Any]:
        """The batch's source file names (parts added later included) and group columns:
        its encrypted information without the QC report, so nothing is computed and no
        statistic is returned (the QC is the report's: ``genovault report``)."""
        infos = [self._info(batch.info_file.path),
                 *(self._info(p.info_file.path) for p in batch.parts if p.info_file is not None)]
        names = [name for info in infos
                 for name in ([str(s["name"]) for s in info.get("sources") or []]
                              or [str(info["source_name"])])]
        return {"sources": names, "group_columns": list(infos[0].get("group_columns", []))}

    def batch_info(self, batch: Batch) -> dict[str, Any]:
        """The batch's encrypted information: source name(s), group columns, QC report (over
        every source file, parts added later included: vault.store.batchinfo)."""
        info = self._info(batch.info_file.path)
        parts = [self._info(p.info_file.path) for p in batch.parts if p.info_file is not None]

        def labels() -> dict[str, list[str | None]]:
            t = self._read(batch.samples_file.path, info.get("group_columns", []))
            return {c: t.column(c).to_pylist() for c in t.column_names}

        if parts:
            info = batchinfo.merge(info, parts, labels)
        i = next(j for j, b in enumerate(self.batches) if b.batch == batch.batch)
        if int(info["qc"].get("samples") or 0) != self._live_n[i]:
            info = {**info, "qc": self._live_qc(i, info["qc"], labels())}
        return info

    def _live_qc(self, i: int, qc: dict[str, Any],
                 labels: Mapping[str, Sequence[str | None]]) -> dict[str, Any]:
        """``qc`` of batch ``i`` as if its withdrawn (or compacted-away) samples had never
        been ingested: sample counts and missingness recounted from the stored genotypes of
        the samples that count; the per-call totals of ingest, which cannot be recounted
        without the source file, are withheld (None)."""
        from kernels import count_genotypes

        b, keep = self.batches[i], self._keep[i]
        n = self._live_n[i]
        cols = {c: [x for x, k in zip(v, keep, strict=True) if k] if keep is not None
                else list(v) for c, v in labels.items()}
        groups = {c: sorted({batchinfo.UNKNOWN if x is None else x for x in v})
                  for c, v in cols.items()}
        codes = {c: np.array([groups[c].index(batchinfo.UNKNOWN if x is None else x)
                              for x in v], np.int32).reshape(n) for c, v in cols.items()}
        rows, missing = 0, 0
        per = {c: np.zeros(len(g), np.int64) for c, g in groups.items()}
        for f in b.variant_files:
            t = self._read(f.path, [fmt.GENOTYPE_COLUMN])
            packed = self._live_packed(i, t)
            rows += t.num_rows
            overall = None
            for c, g in groups.items():  # a grouped count gives the overall one too
                counted = count_genotypes(packed, n, codes[c], len(g))
                per[c] += counted.groups[:, :, 3].sum(0)
                overall = counted.overall if overall is None else overall
            if overall is None:
                overall = count_genotypes(packed, n).overall
            missing += int(overall[:, 3].sum())
        out = dict(qc, samples=n, haploid_calls_as_homozygous=None, half_calls_as_missing=None,
                   missingness=missing / (rows * n) if rows and n else None)
        out["groups"] = {}
        for c, names in groups.items():
            sizes = np.bincount(codes[c], minlength=len(names)).tolist()
            out["groups"][c] = {g: {"samples": m, "missingness": int(per[c][j]) / (rows * m)
                                    if rows else None} for j, (g, m) in
                                enumerate(zip(names, sizes, strict=True))}
        return out

    def _info(self, rel: str) -> dict[str, Any]:
        t = self._read(rel, ["info"])
        if t.num_rows != 1:
            raise IntegrityError(f"{self.dir / rel}: expected one row")
        info: dict[str, Any] = json.loads(t.column("info")[0].as_py())
        return info

    def _read_samples_cols(self, batch: Batch, columns: Sequence[str]) -> pa.Table:
        groups = self._sample_columns(batch)
        have = [c for c in columns if c in fmt.SAMPLE_BASE_COLUMNS or c in groups]
        t = self._read(batch.samples_file.path, have)
        for c in columns:
            if c not in have:
                t = t.append_column(pa.field(c, pa.string()), pa.nulls(t.num_rows, pa.string()))
        return t.select(list(columns))

    # -- variants ------------------------------------------------------------------------
    def info_columns(self) -> dict[str, pa.DataType]:
        """The INFO columns of the dataset's variant files (``info_<ID>`` -> Arrow type), the
        union over batches, first seen first. A batch ingested without one of them has nulls
        there. Raises ConfigError if two batches gave the same INFO field different types."""
        if self._info_types is None:
            found: dict[str, tuple[pa.DataType, str]] = {}
            conflicts: list[str] = []
            for b in self.batches:
                if not b.variant_files:
                    continue
                schema = self._open(b.variant_files[0].path).schema_arrow
                for f in schema:
                    if fmt.info_id_of(f.name) is None:
                        continue
                    seen = found.setdefault(f.name, (f.type, b.batch))
                    if seen[0] != f.type:
                        conflicts.append(f"INFO/{fmt.info_id_of(f.name)} is {seen[0]} in batch "
                                         f"{seen[1]} but {f.type} in batch {b.batch}")
            self._info_types = {name: t for name, (t, _) in found.items()}
            self._info_conflicts = conflicts
        if self._info_conflicts:
            raise ConfigError("the batches of dataset "
                              f"{self.dataset!r} disagree about INFO types: "
                              + "; ".join(self._info_conflicts[:5])
                              + " (re-ingest one of them with the same header declaration)")
        return dict(self._info_types)

    def partitions(self, region: Region | None = None) -> list[tuple[int, int]]:
        """(contig index, bin) of every partition overlapping the region, in genome order."""
        contigs = self.contigs
        want = None
        if region is not None:
            if region.chrom not in contigs:
                return []
            want = contigs.index(region.chrom)
        bin_size = self.manifest.partition.bin_size
        parts = set()
        for b in self.batches:
            for f in b.variant_files:
                if want is not None:
                    if f.contig != want:
                        continue
                    assert region is not None
                    lo = f.bin * bin_size
                    hi = lo + bin_size - 1
                    if hi < region.start or (region.end is not None and lo > region.end):
                        continue
                parts.add((f.contig, f.bin))
        return sorted(parts)

    def blocks(self, region: Region | str | None = None,
               site_columns: Sequence[str] = ("pos", "ref", "alt"),
               genotypes: bool = True) -> Iterator[GenotypeBlock]:
        """Yield one GenotypeBlock per partition overlapping ``region``, in genome order."""
        if isinstance(region, str):
            region = Region.parse(region)
        info: dict[str, pa.DataType] = {}
        if any(c not in fmt.SITE_COLUMNS for c in site_columns):
            info = self.info_columns()
        unknown = [c for c in site_columns if c not in fmt.SITE_COLUMNS and c not in info]
        if unknown:
            raise ConfigError(f"unknown site column(s) {unknown}; available: "
                              f"{', '.join([*fmt.SITE_COLUMNS, *info])}")
        start, end = (region.start, region.end) if region else (1, None)
        batches = self.batches
        for contig_index, bin_index in self.partitions(region):
            per_batch: list[pa.Table | None] = []
            for b in batches:
                f = next((f for f in b.variant_files
                          if f.contig == contig_index and f.bin == bin_index), None)
                if f is None:
                    per_batch.append(None)
                    continue
                cols = list(dict.fromkeys([*site_columns, "pos", "ref", "alt"]))
                if genotypes:
                    cols.append(fmt.GENOTYPE_COLUMN)
                per_batch.append(self._read(f.path, cols, start, end, absent=info))
            block = self._merge(self.contigs[contig_index], per_batch, site_columns, genotypes)
            if block.n_variants:
                yield block

    def _merge(self, contig: str, tables: list[pa.Table | None], site_columns: Sequence[str],
               genotypes: bool) -> GenotypeBlock:
        batches = self.batches
        names = [b.batch for b in batches]
        present = [(i, t) for i, t in enumerate(tables) if t is not None]
        n = self.n_samples
        if len(batches) == 1 and present:
            t = present[0][1]
            packed = self._live_packed(0, t) if genotypes else None
            return GenotypeBlock(contig, t.select(list(site_columns)), packed, n,
                                 np.ones((t.num_rows, 1), np.bool_), names)
        # Align rows across batches on (pos, ref, alt), in position order, first seen first.
        index: dict[tuple[int, str, str], int] = {}
        order_pos: list[int] = []
        row_maps: list[np.ndarray] = []
        for _, t in present:
            keys = zip(t.column("pos").to_pylist(), t.column("ref").to_pylist(),
                       t.column("alt").to_pylist(), strict=True)
            rm = np.empty(t.num_rows, np.int64)
            for r, k in enumerate(keys):
                m = index.get(k)
                if m is None:
                    m = index[k] = len(order_pos)
                    order_pos.append(k[0])
                rm[r] = m
            row_maps.append(rm)
        order = np.argsort(np.asarray(order_pos, np.int64), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        n_rows = order.size
        row_maps = [rank[rm] for rm in row_maps]
        # Site columns from the first batch that has the row.
        concat = pa.concat_tables([t.select(list(site_columns)) for _, t in present])
        first = np.full(n_rows, -1, np.int64)
        base = 0
        for (_, t), rm in zip(present, row_maps, strict=True):
            unset = first[rm] < 0
            first[rm[unset]] = base + np.flatnonzero(unset)
            base += t.num_rows
        sites = concat.take(pa.array(first))
        # an INFO field from the first batch that has a value for it (a batch ingested
        # without that field, or without a value there, does not hide a later batch's value)
        for name in site_columns:
            if fmt.info_id_of(name) is None or len(present) < 2:
                continue
            col = sites.column(name)
            if col.null_count == 0:
                continue
            for (_, t), rm in zip(present, row_maps, strict=True):
                at = np.full(n_rows, -1, np.int64)
                at[rm] = np.arange(t.num_rows)
                col = pc.coalesce(col, t.column(name).take(pa.array(at, mask=at < 0)))
            sites = sites.set_column(sites.schema.get_field_index(name), name, col)
        assessed = np.zeros((n_rows, len(batches)), np.bool_)
        packed = np.zeros((n_rows, packed_bytes(n)), np.uint8) if genotypes else None
        tables_by_batch = dict(present)
        maps_by_batch = {i: rm for (i, _), rm in zip(present, row_maps, strict=True)}
        for i, b in enumerate(batches):
            hom_ref = b.hom_ref_when_absent
            rm = maps_by_batch.get(i, np.empty(0, np.int64))
            assessed[rm, i] = True
            if hom_ref:
                assessed[:, i] = True
            if packed is not None:
                t = tables_by_batch.get(i)
                n_live = self._live_n[i]
                src = self._live_packed(i, t) if t is not None else \
                    np.zeros((0, packed_bytes(n_live)), np.uint8)
                _place_batch(packed, src, rm, self._live_offset[i], n_live,
                             fmt.HOM_REF if hom_ref else fmt.MISSING)
        return GenotypeBlock(contig, sites, packed, n, assessed, names)


    def _live_packed(self, i: int, t: pa.Table) -> np.ndarray:
        b = self.batches[i]
        packed = packed_from_column(t.column(fmt.GENOTYPE_COLUMN), t.num_rows, b.n_samples)
        keep = self._keep[i]
        return packed if keep is None else select_samples(packed, b.n_samples, keep)


def _digest(path: Path, entry: FileEntry) -> str | None:
    """The checksum of ``path`` that ``entry`` records for readers (None: no Parquet tail)."""
    if entry.tail_sha256 is None:
        return sha256_file(path)
    try:
        return parquet_tail_sha256(path)
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    """First line of an Arrow error, which never contains key material."""
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
