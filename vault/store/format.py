"""The on-disk dataset format (schema version 6). docs/format.md explains it for people."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa

# Codes of the packed genotype column (four samples per byte, sample s at bits 2*(s % 4)) and
# the row widths are defined once, in kernels/codes.py; the store re-exports them.
from kernels.codes import HET as HET
from kernels.codes import HOM_ALT as HOM_ALT
from kernels.codes import HOM_REF as HOM_REF
from kernels.codes import MISSING as MISSING
from kernels.codes import packed_bytes as packed_bytes
from kernels.codes import packed_width as packed_width

SCHEMA_VERSION = 6  # 3: signed, versioned manifest (withdrawals, tombstone); 4: batches of
# several source files (parts) and a sample-list fingerprint per batch; 5: each file entry also
# carries the SHA-256 of the file's Parquet tail (crypto metadata + encrypted footer), which is
# what a reader checks (docs/format.md, "What binds a file to its place"); 6: a new dataset's
# Parquet keys are derived Transit keys and each file's wrapped keys are bound to its manifest
# entry (``binding``, ``file_id``: a moved or swapped file fails to decrypt)
#: manifests this GenoVault reads (a v3 manifest is read as is and keeps its number, so its
#: signature still covers the same bytes; the next ingest commits it as the current version)
READABLE_SCHEMA_VERSIONS = (3, 4, 5, 6)
FORMAT_NAME = "genovault-dataset"
MANIFEST = "manifest.json"
#: names of compacted batches' old genotypes keys not yet deleted (vault/keys/lifecycle)
RETIRED_KEYS = ".retired-keys.json"
DEFAULT_BIN_SIZE = 10_000_000  # variant files hold one contig and one 10 Mb position bin

# Site columns of the variant files and their data class (every column is encrypted).
SITE_COLUMNS: dict[str, pa.DataType] = {
    "chrom": pa.string(),
    "pos": pa.int64(),
    "id": pa.string(),
    "ref": pa.string(),
    "alt": pa.string(),
    "qual": pa.float32(),
    "filter": pa.string(),
    "allele_index": pa.int16(),  # k of the split record's ALT alleles (0 for ALT '.')
    "n_alleles": pa.int16(),  # number of ALT alleles of the original record
    "n_haploid": pa.int32(),  # haploid calls stored as homozygous diploid in this row
    "n_half_call": pa.int32(),  # half-calls ('./1') stored as missing in this row
}
GENOTYPE_COLUMN = "genotypes"

# Selected INFO fields (``genovault ingest --info``) are further site columns, named
# ``info_<ID>`` so that they can never take the name of a fixed column (present or future),
# typed by the header's Type and Number and encrypted with the sites key like every site
# column. A site filter (vault.query.sitefilter) calls them by their bare INFO ID.
INFO_PREFIX = "info_"
#: an INFO ID GenoVault keeps: a plain SQL identifier that a policy file can name too
INFO_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: names a kept INFO ID may not have (case-insensitive): the fixed columns a filter sees
RESERVED_INFO_IDS = frozenset({*SITE_COLUMNS, GENOTYPE_COLUMN})
_SCALAR_TYPES: dict[str, pa.DataType] = {
    "Integer": pa.int64(), "Float": pa.float64(), "String": pa.string(),
    "Character": pa.string(), "Flag": pa.bool_(),
}


def info_column(info_id: str) -> str:
    """The site column that holds INFO field ``info_id``."""
    return INFO_PREFIX + info_id


def info_id_of(column: str) -> str | None:
    """The INFO ID a site column holds, or None for a fixed column."""
    return column[len(INFO_PREFIX):] if column.startswith(INFO_PREFIX) else None


def info_arrow_type(number: str, vcf_type: str) -> pa.DataType:
    """Arrow type of an INFO field per split row: Flag -> bool; Number A or 1 -> one value;
    R, G, '.', or a count > 1 -> a list of values (R and G as ``bcftools norm -m-`` keeps
    them for the row's ALT)."""
    scalar = _SCALAR_TYPES[vcf_type]
    if vcf_type == "Flag" or number in ("A", "1"):
        return scalar
    return pa.list_(scalar)


def variant_schema(n_samples: int,
                   info: Sequence[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    """Schema of a variant file: fixed site columns, INFO columns (``info_<ID>``, nullable),
    then the packed genotypes."""
    fields = [pa.field(name, t, nullable=(name == "qual")) for name, t in SITE_COLUMNS.items()]
    fields += [pa.field(name, t, nullable=True) for name, t in info]
    fields.append(pa.field(GENOTYPE_COLUMN, pa.binary(packed_width(n_samples)), nullable=False))
    return pa.schema(fields)


def variant_column_classes(info_columns: Sequence[str] = ()) -> dict[str, str]:
    """Data class of every variant column: INFO columns are site data (the sites key)."""
    classes = {name: "sites" for name in SITE_COLUMNS}
    classes.update({name: "sites" for name in info_columns})
    classes[GENOTYPE_COLUMN] = "genotypes"
    return classes


SAMPLE_BASE_COLUMNS: dict[str, pa.DataType] = {
    "sample_index": pa.int32(),  # position in the cohort (batch offset + column order)
    "pseudonym": pa.string(),  # keyed HMAC of the sample id (Transit, per dataset)
}


def sample_schema(group_columns: list[str]) -> pa.Schema:
    fields = [pa.field(n, t, nullable=False) for n, t in SAMPLE_BASE_COLUMNS.items()]
    fields += [pa.field(g, pa.string()) for g in group_columns]
    return pa.schema(fields)
