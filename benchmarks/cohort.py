"""Simulated cohort for benchmarks: an msprime VCF (bgzip + tabix) plus a sample sheet.

Recipe (shared/notes/tool-conventions.md): msprime.sim_ancestry(samples=n, sequence_length,
recombination_rate=1e-8, population_size=1e4, random_seed=seed); sim_mutations(rate=1e-8,
random_seed=seed); ts.write_vcf(...), bgzip, tabix. VCF positions are the site positions + 1
(so no site sits at POS 0); contig "1"; sample names tsk_0, tsk_1, ... (msprime's).

The sample sheet (``<stem>.samples.tsv`` beside the VCF) has columns
``sample  population  sex  phenotype``:
* population: POP0..POP4, sample i -> POP{i % 5};
* sex: F for even i // 5, M for odd;
* phenotype: case / control drawn from a logistic model on 5 causal common sites (derived
  allele frequency 0.2..0.5, spread along the sequence) with log odds ratio 0.4 per allele,
  so a few variants carry a real association. The causal VCF positions are listed in
  ``<stem>.causal.tsv``.

Files are cached by parameters (default ``benchmarks/.cache/``): a second call with the same
parameters returns at once.

    python benchmarks/cohort.py --samples 5000
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
N_POPULATIONS = 5
N_CAUSAL = 5
CAUSAL_LOG_OR = 0.4


def cohort_paths(
    n_samples: int, out_dir: Path, seed: int, sequence_length: float
) -> tuple[Path, Path, Path]:
    """(vcf.gz, samples.tsv, causal.tsv) paths for these parameters."""
    stem = f"cohort_n{n_samples}_L{int(sequence_length)}_s{seed}"
    return (
        out_dir / f"{stem}.vcf.gz",
        out_dir / f"{stem}.samples.tsv",
        out_dir / f"{stem}.causal.tsv",
    )


def _phenotype(ts, n_samples: int, seed: int) -> tuple[np.ndarray, list[int]]:  # type: ignore[no-untyped-def]
    """Binary phenotype (1 case) from a logistic model on a few common causal sites."""
    rng = np.random.default_rng(seed + 1_000_003)
    n_hap = 2 * n_samples
    candidates = []
    for var in ts.variants():
        if len(var.alleles) != 2:
            continue
        freq = var.genotypes.sum() / n_hap
        if 0.2 <= freq <= 0.5:
            candidates.append((var.site.position, var.genotypes.copy()))
    dosage_sum = np.zeros(n_samples)
    causal_positions: list[int] = []
    if candidates:
        picks = np.linspace(0, len(candidates) - 1, num=min(N_CAUSAL, len(candidates)))
        for idx in sorted({round(float(x)) for x in picks}):
            position, haplotypes = candidates[idx]
            dosage = haplotypes[0::2] + haplotypes[1::2]
            dosage_sum += dosage - dosage.mean()
            causal_positions.append(int(position) + 1)
    prob = 1.0 / (1.0 + np.exp(-CAUSAL_LOG_OR * dosage_sum))
    return (rng.random(n_samples) < prob).astype(np.int8), causal_positions


def simulate_cohort(
    n_samples: int = 5000,
    out_dir: Path | None = None,
    seed: int = 1,
    sequence_length: float = 50e6,
) -> Path:
    """Write (or reuse) the simulated cohort and return the path of its bgzipped VCF."""
    import msprime

    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_CACHE
    out_dir.mkdir(parents=True, exist_ok=True)
    vcf_path, sheet_path, causal_path = cohort_paths(n_samples, out_dir, seed, sequence_length)
    tbi_path = Path(str(vcf_path) + ".tbi")
    if vcf_path.exists() and tbi_path.exists() and sheet_path.exists() and causal_path.exists():
        return vcf_path

    ts = msprime.sim_ancestry(
        samples=n_samples,
        sequence_length=sequence_length,
        recombination_rate=1e-8,
        population_size=1e4,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed)

    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_vcf = Path(tmp) / vcf_path.name
        with open(tmp_vcf, "wb") as raw:
            bgzip = subprocess.Popen(["bgzip", "-c"], stdin=subprocess.PIPE, stdout=raw)
            assert bgzip.stdin is not None
            with os.fdopen(bgzip.stdin.fileno(), "w", closefd=False) as text:
                ts.write_vcf(
                    text,
                    contig_id="1",
                    position_transform=lambda x: np.asarray(x).astype(np.int64) + 1,
                )
            bgzip.stdin.close()
            if bgzip.wait() != 0:
                raise RuntimeError("bgzip failed")
        subprocess.run(["tabix", "-f", "-p", "vcf", str(tmp_vcf)], check=True)

        phenotype, causal = _phenotype(ts, n_samples, seed)
        tmp_sheet = Path(tmp) / sheet_path.name
        with open(tmp_sheet, "w") as fh:
            fh.write("sample\tpopulation\tsex\tphenotype\n")
            for i in range(n_samples):
                sex = "F" if (i // N_POPULATIONS) % 2 == 0 else "M"
                pheno = "case" if phenotype[i] else "control"
                fh.write(f"tsk_{i}\tPOP{i % N_POPULATIONS}\t{sex}\t{pheno}\n")
        tmp_causal = Path(tmp) / causal_path.name
        tmp_causal.write_text("pos\n" + "".join(f"{p}\n" for p in causal))

        # publish: index and sheets first, the VCF last (its presence marks completion)
        shutil.move(str(tmp_vcf) + ".tbi", tbi_path)
        shutil.move(tmp_sheet, sheet_path)
        shutil.move(tmp_causal, causal_path)
        shutil.move(tmp_vcf, vcf_path)
    return vcf_path


def cohort_bcf(vcf: Path) -> Path:
    """The same cohort as BCF (``bcftools view -Ob``, BGZF-compressed BCF 2.2), cached beside
    the VCF (``<stem>.bcf``)."""
    bcf = vcf.with_name(vcf.name.removesuffix(".vcf.gz") + ".bcf")
    if bcf.exists() and bcf.stat().st_mtime >= vcf.stat().st_mtime:
        return bcf
    tmp = bcf.with_name(bcf.name + ".part")
    subprocess.run(["bcftools", "view", "--no-version", "-Ob", "-o", str(tmp), str(vcf)],
                   check=True)
    tmp.replace(bcf)
    return bcf


def split_regions(vcf: Path, parts: int) -> list[Path]:
    """The cohort cut into ``parts`` files of consecutive position ranges (same samples,
    same order, bgzipped), cached beside the VCF (``<stem>.part<k>of<parts>.vcf.gz``)."""
    stem = vcf.name.removesuffix(".vcf.gz")
    out = [vcf.with_name(f"{stem}.part{k + 1}of{parts}.vcf.gz") for k in range(parts)]
    if all(p.exists() and p.stat().st_mtime >= vcf.stat().st_mtime for p in out):
        return out
    chrom = next(line.split("\t")[0] for line in _data_lines(vcf, 1))
    last = int(subprocess.run(["bash", "-c", f"bcftools query -f '%POS\\n' "
                                             f"{shlex.quote(str(vcf))} | tail -1"],
                              check=True, capture_output=True, text=True).stdout)
    bounds = [round(last * k / parts) for k in range(parts + 1)]
    for k, path in enumerate(out):
        lo, hi = bounds[k] + 1, bounds[k + 1]
        region = f"{chrom}:{lo}-{hi}"
        tmp = path.with_name(path.name + ".part")
        # -t keeps the records whose POS is in the range (-r would also keep a record that
        # only overlaps it, which then lands in two files)
        subprocess.run(["bcftools", "view", "--no-version", "-t", region, "-Oz", "-o", str(tmp),
                        str(vcf)], check=True)
        tmp.replace(path)
    return out


def _data_lines(vcf: Path, n: int) -> list[str]:
    import gzip

    lines = []
    with gzip.open(vcf, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                lines.append(line)
                if len(lines) == n:
                    break
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--length", type=float, default=50e6, help="sequence length (bp)")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--bcf", action="store_true", help="also write the cohort as BCF")
    args = parser.parse_args(argv)
    path = simulate_cohort(args.samples, args.out_dir, args.seed, args.length)
    print(path)
    if args.bcf:
        print(cohort_bcf(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
