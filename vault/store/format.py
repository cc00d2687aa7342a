"""The on-disk dataset format (schema version 4). docs/format.md explains it for people."""

from __future__ import annotations

import pyarrow as pa

# Codes of the packed genotype column (four samples per byte, sample s at bits 2*(s % 4)) and
# the row widths are defined once, in kernels/codes.py; the store re-exports them.
from kernels.codes import HET as HET
from kernels.codes import HOM_ALT as HOM_ALT
from kernels.codes import HOM_REF as HOM_REF
from kernels.codes import MISSING as MISSING
from kernels.codes import packed_bytes as packed_bytes
from kernels.codes import packed_width as packed_width

SCHEMA_VERSION = 4  # 3: signed, versioned manifest (withdrawals, tombstone); 4: batches of
# several source files (parts) and a sample-list fingerprint per batch
#: manifests this GenoVault reads (a v3 manifest is read as is and keeps its number, so its
#: signature still covers the same bytes; the next ingest commits it as the current version)
READABLE_SCHEMA_VERSIONS = (3, 4)
FORMAT_NAME = "genovault-dataset"
MANIFEST = "manifest.json"
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


def variant_schema(n_samples: int) -> pa.Schema:
    fields = [pa.field(name, t, nullable=(name == "qual")) for name, t in SITE_COLUMNS.items()]
    fields.append(pa.field(GENOTYPE_COLUMN, pa.binary(packed_width(n_samples)), nullable=False))
    return pa.schema(fields)


def variant_column_classes() -> dict[str, str]:
    classes = {name: "sites" for name in SITE_COLUMNS}
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
