"""Writing one batch of encrypted Parquet files into a staging folder.

Files are written under a staging folder that no reader looks at; the ingest pipeline
moves the folder into place and only then commits the manifest (see manifest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vault import faults
from vault.errors import IngestError
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.fsutil import fsync_path, parquet_tail_sha256, sha256_file

FILE_MODE = 0o600
DIR_MODE = 0o700

ROW_GROUP_BYTES = 16 << 20


def _writer(path: Path, schema: pa.Schema, keyring: Keyring, classes: dict[str, str],
            dictionary: list[str], file_id: str | None) -> pq.ParquetWriter:
    missing = set(schema.names) - set(classes)
    if missing:  # pyarrow would store these in plaintext
        raise ValueError(f"columns without an encryption key: {sorted(missing)}")
    props = keyring.encryption_properties(str(path), classes, file_id)
    return pq.ParquetWriter(str(path), schema, compression="zstd", compression_level=1,
                            use_dictionary=dictionary, write_statistics=True,
                            encryption_properties=props)


def _file_entry(root: Path, path: Path, rows: int, file_id: str | None,
                **extra: Any) -> dict[str, Any]:
    """Make a written file durable and private (0600), and describe it for the manifest
    (``file_id``: the id its keys are bound to, see Keyring; None: an unbound dataset)."""
    for p in (path, path.parent / f"_KEY_MATERIAL_FOR_{path.name}.json"):
        if p.exists():
            os.chmod(p, FILE_MODE)
            fsync_path(p)
    entry = {"path": path.relative_to(root).as_posix(), "rows": rows,
             "bytes": path.stat().st_size, "sha256": sha256_file(path),
             "tail_sha256": parquet_tail_sha256(path), **extra}
    if file_id is not None:
        entry["file_id"] = file_id
    faults.point("store.file_written")
    return entry


def write_encrypted(path: Path, table: pa.Table, keyring: Keyring, data_class: str,
                    file_id: str | None = None) -> None:
    """``table`` as one encrypted Parquet file, every column under ``data_class``'s key (its key
    material beside it), durable and private; ``file_id`` as for
    :meth:`Keyring.encryption_properties` (required exactly when the dataset is bound)."""
    w = _writer(path, table.schema, keyring, {n: data_class for n in table.schema.names},
                dictionary=[], file_id=file_id)
    w.write_table(table)
    w.close()
    _file_entry(path.parent, path, table.num_rows, file_id)


class BatchWriter:
    """Writes a batch's samples table and its variant files, partitioned by contig and bin."""

    def __init__(self, batch_dir: Path, keyring: Keyring, n_samples: int,
                 bin_size: int) -> None:
        self.dir = batch_dir  # file entries hold paths relative to it
        self.keyring = keyring
        self.n_samples = n_samples
        self.bin_size = bin_size
        self.schema = fmt.variant_schema(n_samples)
        #: the batch's INFO columns (name, type), fixed by the first rows added: every
        #: variant file of a batch has the same schema
        self.info: tuple[tuple[str, pa.DataType], ...] | None = None
        self.width = fmt.packed_width(n_samples)
        self.files: list[dict[str, Any]] = []
        self._current: tuple[int, int] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._file_id: str | None = None
        self._rows = 0
        self._rows_per_group = max(1024, ROW_GROUP_BYTES // max(self.width, 1))
        (batch_dir / "variants").mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def write_samples(self, table: pa.Table) -> dict[str, Any]:
        path = self.dir / "samples.parquet"
        classes = {name: "samples" for name in table.schema.names}
        file_id = self.keyring.new_file_id()
        w = _writer(path, table.schema, self.keyring, classes, dictionary=[], file_id=file_id)
        w.write_table(table)
        w.close()
        return _file_entry(self.dir, path, table.num_rows, file_id)

    def write_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """The batch's information (source name, group columns, QC) as one encrypted row.

        It says things about the samples, so it is encrypted with the samples key and never
        appears in the plaintext manifest.
        """
        path = self.dir / "info.parquet"
        table = pa.table({"info": pa.array([json.dumps(info, sort_keys=True)], pa.string())})
        file_id = self.keyring.new_file_id()
        w = _writer(path, table.schema, self.keyring, {"info": "samples"}, dictionary=[],
                    file_id=file_id)
        w.write_table(table)
        w.close()
        return _file_entry(self.dir, path, table.num_rows, file_id)

    def add(self, contig_index: int, columns: dict[str, pa.Array], packed: np.ndarray) -> None:
        """Append rows of one contig (sorted by pos) with their packed genotypes."""
        pos = columns["pos"].to_numpy()
        if pos.size == 0:
            return
        self._check_info(columns)
        bins = pos // self.bin_size
        cuts = np.flatnonzero(np.diff(bins)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [pos.size]])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            self._switch(contig_index, int(bins[s]))
            sl = {k: v.slice(s, e - s) for k, v in columns.items()}
            geno = packed[s:e]
            if geno.shape[1] != self.width:  # zero samples: one zero byte per row
                geno = np.zeros((e - s, self.width), np.uint8)
            geno = np.ascontiguousarray(geno)
            sl[fmt.GENOTYPE_COLUMN] = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(self.width), e - s, [None, pa.py_buffer(geno)])
            table = pa.Table.from_pydict(sl, schema=self.schema)
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=self._rows_per_group)
            self._rows += e - s

    def _check_info(self, columns: dict[str, pa.Array]) -> None:
        """The first rows fix the batch's INFO columns; later rows must bring the same."""
        info = tuple((name, arr.type) for name, arr in columns.items()
                     if fmt.info_id_of(name) is not None)
        if self.info is None:
            self.info = info
            self.schema = fmt.variant_schema(self.n_samples, info)
        elif info != self.info:
            def show(cols: tuple[tuple[str, pa.DataType], ...]) -> str:
                return ", ".join(f"{n[len(fmt.INFO_PREFIX):]}:{t}" for n, t in cols) or "none"

            raise IngestError(f"the INFO fields of one batch must be the same in every input "
                              f"(name and header type): first {show(self.info)}, then "
                              f"{show(info)}")

    def _switch(self, contig_index: int, bin_index: int) -> None:
        key = (contig_index, bin_index)
        if key == self._current:
            return
        self._finish()
        folder = self.dir / "variants" / f"c{contig_index:04d}"
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._path = folder / f"bin{bin_index:06d}.parquet"
        if self._path.exists():
            raise ValueError(f"internal error: partition {key} written twice")
        info_names = [name for name, _ in self.info or ()]
        self._file_id = self.keyring.new_file_id()
        self._writer = _writer(self._path, self.schema, self.keyring,
                               fmt.variant_column_classes(info_names),
                               dictionary=["chrom", "filter"], file_id=self._file_id)
        self._current = key
        self._rows = 0

    def _finish(self) -> None:
        if self._writer is None or self._path is None or self._current is None:
            return
        self._writer.close()
        contig_index, bin_index = self._current
        self.files.append(_file_entry(self.dir, self._path, self._rows, self._file_id,
                                      contig=contig_index, bin=bin_index))
        self._writer = None
        self._path = None

    def close(self) -> list[dict[str, Any]]:
        self._finish()
        self._current = None
        return self.files

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the staging folder is removed anyway
                self._writer.close()
            self._writer = None
