"""Naive VCF -> 2-bit genotype codes decoder, the independent oracle for ingest and kernels.

Written for clarity, not speed: one record at a time, one sample at a time, reading
``rec.samples[i]['GT']`` through pysam. It implements exactly the store's rules:

* One row per ALT allele (``bcftools norm -m-``): in the row for ALT ``k``, an allele equal to
  ``k`` counts as ALT and every other allele (REF or another ALT) counts as REF.
* A record whose ALT is ``.`` is one row (alt ``"."``) whose codes are all 0 (called) or 3.
* Diploid call -> number of ALT copies: 0 hom-ref, 1 het, 2 hom-alt. Phasing is ignored.
* Half-call (``./1``, ``1/.``) or fully missing call (``./.``, ``.``) -> 3 (missing), as
  plink2 ``--vcf-half-call missing``.
* Haploid call -> homozygous diploid (plink2's convention): ``1`` -> 2, ``0`` -> 0; a called
  haploid genotype also adds one to that row's ``n_haploid``. A missing haploid call ``.`` is
  just missing (3) and is not counted in ``n_haploid``.
* No GT in FORMAT -> every sample missing.
* Ploidy > 2 -> ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam

HOM_REF, HET, HOM_ALT, MISSING = 0, 1, 2, 3


@dataclass
class DecodedVcf:
    """Decoded genotypes: one row per (split) biallelic variant."""

    samples: list[str]
    chrom: list[str]
    pos: np.ndarray  # int64, 1-based VCF POS
    ref: list[str]
    alt: list[str]  # one ALT allele per row ("." for a record without ALT)
    codes: np.ndarray  # int8 (n_rows, n_samples), values 0..3
    n_haploid: np.ndarray  # int32 (n_rows,), called haploid genotypes per row


def _code_for(gt: tuple[int | None, ...] | None, alt_index: int) -> tuple[int, bool]:
    """Return (code, is_called_haploid) for one sample's GT and the row's ALT index."""
    if gt is None or len(gt) == 0:
        return MISSING, False
    if len(gt) > 2:
        raise ValueError(f"ploidy {len(gt)} > 2 is not supported (GT={gt})")
    if len(gt) == 1:
        allele = gt[0]
        if allele is None:
            return MISSING, False
        return (HOM_ALT if allele == alt_index else HOM_REF), True
    first, second = gt
    if first is None or second is None:  # ./. and half-calls
        return MISSING, False
    n_alt = int(first == alt_index) + int(second == alt_index)
    return n_alt, False


def decode_vcf(path: str | Path) -> DecodedVcf:
    """Decode every record of a VCF/BCF into split biallelic rows of 2-bit codes."""
    samples: list[str] = []
    chrom: list[str] = []
    pos: list[int] = []
    ref: list[str] = []
    alt: list[str] = []
    rows: list[list[int]] = []
    n_haploid: list[int] = []
    with pysam.VariantFile(str(path)) as vcf:
        samples = list(vcf.header.samples)
        for rec in vcf:
            has_gt = "GT" in rec.format
            gts = [rec.samples[i]["GT"] if has_gt else None for i in range(len(samples))]
            alts = list(rec.alts) if rec.alts else ["."]
            for k, alt_allele in enumerate(alts, start=1):
                # For ALT ".", no allele index equals k=1 except a malformed "1", which
                # pysam would not produce without an ALT; all called alleles are REF.
                row: list[int] = []
                haploid = 0
                for gt in gts:
                    code, is_haploid = _code_for(gt, k if alt_allele != "." else -1)
                    row.append(code)
                    haploid += int(is_haploid)
                chrom.append(str(rec.chrom))
                pos.append(int(rec.pos))
                ref.append(str(rec.ref))
                alt.append(alt_allele)
                rows.append(row)
                n_haploid.append(haploid)
    codes = np.array(rows, dtype=np.int8).reshape(len(rows), len(samples))
    return DecodedVcf(
        samples=samples,
        chrom=chrom,
        pos=np.array(pos, dtype=np.int64),
        ref=ref,
        alt=alt,
        codes=codes,
        n_haploid=np.array(n_haploid, dtype=np.int32),
    )


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Pack (n_rows, n_samples) codes 0..3 into the store's layout, four samples per byte.

    Sample ``s`` sits in byte ``s // 4`` at bits ``2*(s % 4)`` and ``2*(s % 4)+1`` (low bits
    first, PLINK .bed order); padding bits of the last byte are 0.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError("codes must be 2-D (n_rows, n_samples)")
    n_rows, n_samples = codes.shape
    n_bytes = (n_samples + 3) // 4
    packed = np.zeros((n_rows, n_bytes), dtype=np.uint8)
    for row in range(n_rows):
        for s in range(n_samples):
            code = int(codes[row, s])
            if not 0 <= code <= 3:
                raise ValueError(f"code {code} out of range 0..3 at row {row}, sample {s}")
            packed[row, s // 4] |= code << (2 * (s % 4))
    return packed
