"""The typed manifest: the plaintext commit point of a dataset (``manifest.json``).

It says which files, batches and keys exist — and nothing about the samples: no source file
names, no group labels, no QC numbers (those are in each batch's encrypted ``info`` file).
:meth:`Manifest.load` validates strictly (unknown fields, wrong types and foreign formats are
refused); :meth:`Manifest.dumps` writes it in a stable order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vault.errors import StoreError
from vault.store import format as fmt


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Model):
    """One stored file: path relative to the dataset folder, rows, size and checksum."""

    path: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class VariantFile(FileEntry):
    """A variant file: one contig (index into ``Manifest.contigs``) and one position bin."""

    contig: int = Field(ge=0)
    bin: int = Field(ge=0)


class Source(_Model):
    """What was ingested (checksum only: the file name can name a person)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    format: str
    fileformat: str | None = None


class Identity(_Model):
    """Who ingested a batch, as Vault knows them (never a token)."""

    display_name: str = ""
    entity_id: str = ""


class Batch(_Model):
    batch: str = Field(pattern=r"^b[0-9]{4,}$")
    sample_offset: int = Field(ge=0)
    n_samples: int = Field(ge=0)
    source: Source
    absent_sites: Literal["hom_ref", "not_assessed"]
    ingested_at: str
    ingested_by: Identity
    samples_file: FileEntry
    info_file: FileEntry
    variant_files: list[VariantFile]
    #: the batch's own genotypes key (None: the dataset's, batches written before per-batch keys)
    genotype_key: str | None = None

    @property
    def variant_rows(self) -> int:
        return sum(f.rows for f in self.variant_files)

    @property
    def hom_ref_when_absent(self) -> bool:
        return self.absent_sites == "hom_ref"


class Partition(_Model):
    bin_size: int = Field(gt=0)
    by: list[str] = Field(default_factory=lambda: ["contig", "position_bin"])


class Signature(_Model):
    """A Transit signature over the manifest's signed bytes (everything but ``signature``)."""

    key: str
    key_version: int = Field(ge=1)
    value: str  # "vault:vN:<base64>"


class Withdrawal(_Model):
    """A withdrawn participant: sha256 of the sample's pseudonym (never the id), when, who."""

    pseudonym_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: str
    by: Identity


class Consent(_Model):
    """Renewed consent of a withdrawn participant: re-ingesting them is allowed again."""

    pseudonym_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: str
    by: Identity


class Tombstone(_Model):
    """What is left of a crypto-shredded dataset: its keys are deleted, its files removed."""

    destroyed_at: str
    requested_by: Identity
    approved_by: Identity
    request_id: str
    keys: list[str]


class Manifest(_Model):
    format: Literal["genovault-dataset"] = "genovault-dataset"  # fmt.FORMAT_NAME
    schema_version: int = fmt.SCHEMA_VERSION
    dataset: str
    #: random id of this incarnation of the dataset (a destroyed and re-created dataset of the
    #: same name gets a new one); it names the dataset's entries in Vault's sample registry
    uid: str = Field(pattern=r"^[0-9a-f]{32}$")
    created_at: str
    updated_at: str
    keys: dict[str, str]
    partition: Partition
    sample_count: int = Field(ge=0)
    contigs: list[str]
    batches: list[Batch]
    #: commit counter: +1 per committed manifest, anchored in Vault KV (rollback detection)
    version: int = Field(default=0, ge=0)
    withdrawn: list[Withdrawal] = Field(default_factory=list)
    consents: list[Consent] = Field(default_factory=list)
    tombstone: Tombstone | None = None
    signature: Signature | None = None

    def withdrawn_hashes(self) -> set[str]:
        """sha256 of the pseudonyms withdrawn and not re-consented since (every consent
        answers one earlier withdrawal)."""
        from collections import Counter

        w = Counter(x.pseudonym_sha256 for x in self.withdrawn)
        c = Counter(x.pseudonym_sha256 for x in self.consents)
        return {h for h, n in w.items() if n > c.get(h, 0)}

    def signed_bytes(self) -> bytes:
        """The canonical bytes a signature covers: the manifest without ``signature``."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @property
    def variant_rows(self) -> int:
        return sum(b.variant_rows for b in self.batches)

    def transit_keys(self, data_class: str) -> list[str]:
        """Every Transit key of ``data_class`` the dataset uses (genotypes: per batch too)."""
        names = [self.keys[data_class]] if data_class in self.keys else []
        if data_class == "genotypes":
            names += [b.genotype_key for b in self.batches if b.genotype_key]
        return list(dict.fromkeys(names))

    def files(self) -> list[FileEntry]:
        """Every file the manifest lists, batch after batch."""
        out: list[FileEntry] = []
        for b in self.batches:
            out += [b.samples_file, b.info_file, *b.variant_files]
        return out

    def dumps(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read and validate ``path``; StoreError with the reason if it is not a manifest."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable manifest ({exc}); restore it from backup") \
                from exc
        if not isinstance(raw, dict) or raw.get("format") != fmt.FORMAT_NAME:
            raise StoreError(f"{path}: not a GenoVault manifest")
        version = raw.get("schema_version")
        if version != fmt.SCHEMA_VERSION:
            hint = (" (schema v1 kept sample traits in plaintext; re-ingest the dataset with "
                    "this version)") if version == 1 else (
                " (schema v2 manifests are unsigned: an admin adopts one with `genovault keys "
                "adopt DATASET`)") if version == 2 else ""
            raise StoreError(f"{path}: schema version {version} is not supported by this "
                             f"GenoVault (supports {fmt.SCHEMA_VERSION}){hint}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise StoreError(f"{path}: invalid manifest ({exc.error_count()} problem(s); first: "
                             f"{where}: {first.get('msg')}); restore it from backup") from None
