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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from vault.errors import StoreError
from vault.store import format as fmt


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Model):
    """One stored file: path relative to the dataset folder, rows, size and checksums.

    ``sha256`` covers the whole file (``genovault datasets verify``); ``tail_sha256``
    (schema 5) covers its Parquet tail, which is what a reader checks before it decrypts:
    the tail holds the file's random AAD, under which every page and header of the file is
    AES-GCM authenticated (docs/format.md). Entries written before schema 5 have no tail
    checksum (left out of the manifest, so their signed bytes are unchanged), and readers
    check their whole file.
    """

    path: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tail_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: schema 6, bound datasets: the random id the file's wrapped keys are bound to (Transit
    #: derivation context ``genovault-file/v1/<dataset>/<file_id>``, see Keyring)
    file_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")

    @model_serializer(mode="wrap")
    def _omit_missing_tail(self, handler: SerializerFunctionWrapHandler,
                           info: SerializationInfo) -> dict[str, object]:
        out: dict[str, object] = handler(self)
        for name in ("tail_sha256", "file_id"):
            if out.get(name, "") is None:
                del out[name]
        return out


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


class Part(Source):
    """A further source file of a batch (schema 4): the batch's samples, other regions.

    Files ingested together with the batch's first one carry no more than their checksum; a
    part added later (``--batch``) also says when and by whom, and has its own encrypted
    information file (source name, QC: the ingest role cannot read the batch's to update it).
    """

    ingested_at: str | None = None
    ingested_by: Identity | None = None
    info_file: FileEntry | None = None


#: Batch fields added in schema 4, left out of the manifest while they hold these values: a
#: schema-3 batch serialises to exactly its old bytes, which its signature covers
_BATCH_V4_DEFAULTS: dict[str, object] = {"parts": [], "sample_list_sha256": None,
                                         "sample_set_sha256": None}


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
    #: schema 4: the batch's further source files, in the order they were ingested
    parts: list[Part] = Field(default_factory=list)
    #: schema 4: sha256 over the batch's sample pseudonyms in column order, and over them
    #: sorted: what a later part is checked against (same samples, same order). Pseudonyms
    #: are keyed HMACs, so neither says anything about sample ids without Vault's key.
    sample_list_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    sample_set_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_serializer(mode="wrap")
    def _omit_new_defaults(self, handler: SerializerFunctionWrapHandler,
                           info: SerializationInfo) -> dict[str, object]:
        out: dict[str, object] = handler(self)
        for name, default in _BATCH_V4_DEFAULTS.items():
            if name in out and out[name] == default:
                del out[name]
        return out

    @property
    def sources(self) -> list[Source]:
        """Every source file of the batch: the first one, then its parts."""
        return [self.source, *self.parts]

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
    #: schema 6: how files are bound to their manifest entry in the cryptography; None
    #: (datasets created before) leaves it to the signed checksums. "transit-derived-v1": the
    #: dataset's Parquet keys are derived Transit keys and every file entry has a ``file_id``
    #: whose context its wrapped keys were made with (docs/lifecycle.md)
    binding: Literal["transit-derived-v1"] | None = None
    signature: Signature | None = None

    @model_serializer(mode="wrap")
    def _omit_no_binding(self, handler: SerializerFunctionWrapHandler,
                         info: SerializationInfo) -> dict[str, object]:
        out: dict[str, object] = handler(self)  # an older manifest keeps its signed bytes
        if out.get("binding", "") is None:
            del out["binding"]
        return out

    @model_validator(mode="after")
    def _bound_files_have_ids(self) -> Manifest:
        ids = [f.file_id for f in self.files()]
        if self.binding is None:
            if any(i is not None for i in ids):
                raise ValueError("file ids in a dataset that does not bind its files")
        elif None in ids or len(set(ids)) != len(ids):
            raise ValueError("a bound dataset needs one distinct file id per file")
        return self

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
            out += [p.info_file for p in b.parts if p.info_file is not None]
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
        if version not in fmt.READABLE_SCHEMA_VERSIONS:
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
