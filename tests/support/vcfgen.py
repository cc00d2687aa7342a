"""Small synthetic VCFs for tests: deterministic, valid unless a test edits a line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam

GT_TEXT = {0: "0/0", 1: "0/1", 2: "1/1", 3: "./."}


def header(samples: list[str], contigs: list[str] | None = None) -> list[str]:
    lines = ["##fileformat=VCFv4.2",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    lines += [f"##contig=<ID={c}>" for c in (contigs or [])]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                            "FORMAT", *samples]))
    return lines


def random_records(n_samples: int, n_variants: int, seed: int = 0, chrom: str = "1",
                   start: int = 1000, step: int = 100, missing: float = 0.02) -> tuple[
                       list[str], np.ndarray]:
    """Biallelic SNV lines and their (n_variants, n_samples) codes."""
    rng = np.random.default_rng(seed)
    af = rng.uniform(0.01, 0.5, n_variants)
    codes = rng.binomial(2, af[:, None], size=(n_variants, n_samples)).astype(np.int8)
    codes[rng.random(codes.shape) < missing] = 3
    bases = "ACGT"
    lines = []
    for i in range(n_variants):
        ref = bases[i % 4]
        alt = bases[(i + 1) % 4]
        gts = "\t".join(GT_TEXT[int(c)] for c in codes[i])
        lines.append(f"{chrom}\t{start + i * step}\tv{i}\t{ref}\t{alt}\t50\tPASS\t.\tGT\t{gts}")
    return lines, codes


def write_vcf(path: Path, lines: list[str], bgzip: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if not bgzip:
        path.write_text(text)
        return path
    plain = path.with_suffix("")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return path


def cohort_vcf(path: Path, samples: list[str], n_variants: int, seed: int = 0,
               bgzip: bool = False, **kw: object) -> tuple[Path, np.ndarray]:
    recs, codes = random_records(len(samples), n_variants, seed=seed, **kw)  # type: ignore[arg-type]
    return write_vcf(path, header(samples) + recs, bgzip=bgzip), codes


def unpack(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """(rows, ceil(n/4)) packed codes -> (rows, n) int8 codes (test helper, written plainly)."""
    out = np.zeros((packed.shape[0], n_samples), np.int8)
    for s in range(n_samples):
        out[:, s] = (packed[:, s // 4] >> (2 * (s % 4))) & 3
    return out
