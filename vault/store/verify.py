"""`genovault datasets verify`: every file present, unmodified, decryptable, with its rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vault.errors import GenoVaultError
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.manifest import FileEntry
from vault.store.reader import DatasetReader, packed_from_column
from vault.store.writer import sha256_file


@dataclass
class VerifyReport:
    dataset: str
    files_checked: int = 0
    rows_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(reader: DatasetReader,
                   on_file: Callable[[str], None] | None = None) -> VerifyReport:
    """Check checksums and sizes, then decrypt every column of every file and count rows.

    Every file's key material is unwrapped afresh (no KEK cache across files), so damaged
    key material is reported for the file it belongs to.
    """
    report = VerifyReport(reader.dataset)
    folder = reader.dir
    for b in reader.batches:
        entries: list[tuple[FileEntry, str]] = [(b.samples_file, "samples"),
                                                 (b.info_file, "info")]
        entries += [(p.info_file, "info") for p in b.parts if p.info_file is not None]
        entries += [(f, "variants") for f in b.variant_files]
        for entry, kind in entries:
            rel = entry.path
            path = folder / rel
            if on_file:
                on_file(rel)
            report.files_checked += 1
            if not path.is_file():
                report.problems.append(f"{rel}: missing")
                continue
            if path.stat().st_size != entry.bytes or sha256_file(path) != entry.sha256:
                report.problems.append(f"{rel}: checksum mismatch (modified or damaged)")
                continue
            # Unwrap this file's own key material through Vault: with cached KEKs (shared by
            # every file of a batch) a damaged wrappedKEK would go unnoticed here and only
            # fail a later reader that happens to open this file first.
            reader.keyring.clear_caches()
            try:
                table = reader._read(rel, None)
            except GenoVaultError as exc:
                report.problems.append(f"{rel}: {exc}")
                continue
            if table.num_rows != entry.rows:
                report.problems.append(f"{rel}: {table.num_rows} rows, manifest says "
                                       f"{entry.rows}")
                continue
            if kind == "samples" and table.num_rows != b.n_samples:
                report.problems.append(f"{rel}: {table.num_rows} samples, batch has "
                                       f"{b.n_samples}")
            if kind == "variants":
                packed_from_column(table.column(fmt.GENOTYPE_COLUMN), table.num_rows,
                                   b.n_samples)
            report.rows_checked += table.num_rows
    return report


def open_reader(dataset: str, client: Any, store: Store) -> DatasetReader:
    return DatasetReader(store, dataset, Keyring(client, dataset))
