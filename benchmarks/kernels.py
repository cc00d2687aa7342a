"""Benchmark the statistics kernels against plink2 (and scikit-allel) on an msprime cohort.

    python benchmarks/kernels.py --samples 5000

Steps: simulate (or reuse) the cohort (benchmarks/cohort.py); convert it once with plink2 to
a .pgen (plink2's own timings run on it) and a .bed, whose 2-bit codes are remapped into the
store's layout and held in memory (multiallelic sites are dropped, ``--max-alleles 2``, on
both sides). Then, best of ``--repeats`` runs each:

* ours: count_genotypes + variant_stats (AC/AN/AF, genotype counts, HWE + mid-p, ExcHet,
  missingness), overall; and overall + 5 population groups from the same pass;
* plink2 --pfile --freq --hardy --missing (whole process, wall time), and the same with
  --loop-cats over the 5 populations;
* scikit-allel GenotypeArray.count_alleles on a slice (genotypes/s, vs our counting rate);
* logistic regression of the sample sheet's case/control phenotype vs plink2 --glm
  (no-firth, omit-ref): without covariates; with 2 discrete covariates (population index,
  sex: our fit merges samples sharing covariates, dosage and status into weighted rows); and
  with 1 continuous covariate (a fake PC: one row per sample, the slow path);
* first-call latency of the kernels in a fresh interpreter, with a cold numba cache (full
  compile) and with the on-disk cache warm.

Ends by printing one JSON line; each ratio is plink2 time / our time (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402
from benchmarks.cohort import cohort_paths, simulate_cohort  # noqa: E402

# .bed 2-bit codes (A1 = ALT as plink2 --make-bed writes it): 00 hom A1, 01 missing, 10 het,
# 11 hom A2 (REF) -> store codes 2, 3, 1, 0.
_BED_TO_STORE = np.array([2, 3, 1, 0], dtype=np.uint8)
_BYTE_LUT = np.array(
    [sum(int(_BED_TO_STORE[(b >> (2 * k)) & 3]) << (2 * k) for k in range(4)) for b in range(256)],
    dtype=np.uint8,
)


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def load_block(bed_prefix: Path, n_samples: int) -> np.ndarray:
    """The .bed genotypes as the store's packed block (padding bits zeroed)."""
    n_bytes = (n_samples + 3) // 4
    raw = np.fromfile(f"{bed_prefix}.bed", dtype=np.uint8, offset=3)
    packed = _BYTE_LUT[raw.reshape(-1, n_bytes)]
    rem = n_samples % 4
    if rem:
        packed[:, -1] &= np.uint8((1 << (2 * rem)) - 1)
    return np.ascontiguousarray(packed)


def first_call_latency(cache_dir: str | None) -> float:
    """Seconds for import + first count_genotypes/variant_stats/hardy call in a new process."""
    code = (
        "import time, numpy as np; t = time.perf_counter(); import kernels; "
        "p = np.zeros((4, 3), np.uint8); "
        "c = kernels.count_genotypes(p, 9, np.zeros(9, np.int32), 1); "
        "kernels.variant_stats(c.overall); kernels.variant_stats(c.groups); "
        "print(time.perf_counter() - t)"
    )
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT, env=env
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--length", type=float, default=50e6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--allel-variants", type=int, default=20000)
    parser.add_argument("--skip-glm-covar", action="store_true")
    parser.add_argument(
        "--only",
        choices=["glm"],
        help="glm: time only the logistic regressions (ours and plink2 --glm); the JSON line "
        "then has only the glm keys",
    )
    args = parser.parse_args(argv)
    only_glm = args.only == "glm"

    vcf = simulate_cohort(args.samples, None, args.seed, args.length)
    _, sheet, _ = cohort_paths(args.samples, vcf.parent, args.seed, args.length)
    rows = [line.split("\t") for line in sheet.read_text().splitlines()[1:]]
    pop = np.array([int(r[1].removeprefix("POP")) for r in rows], np.int32)
    male = np.array([r[2] == "M" for r in rows], np.int32)
    case = np.array([r[3].strip() == "case" for r in rows], np.int32)
    n = len(rows)
    threads = str(os.cpu_count() or 2)

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pheno = tmp / "pheno.tsv"
        pheno.write_text(
            "#IID\tPHENO\tPOP\n"
            + "".join(
                f"{r[0]}\t{2 if c else 1}\tP{p}\n" for r, c, p in zip(rows, case, pop, strict=True)
            )
        )
        covar = tmp / "covar.tsv"
        covar.write_text(
            "#IID\tPOPIDX\tMALE\n"
            + "".join(f"{r[0]}\t{p}\t{m}\n" for r, p, m in zip(rows, pop, male, strict=True))
        )
        # a continuous covariate (a fake principal component): every sample is distinct
        pc = np.random.default_rng(args.seed).normal(size=n)
        covar_pc = tmp / "covar_pc.tsv"
        covar_pc.write_text(
            "#IID\tPC1\n" + "".join(f"{r[0]}\t{x:.6f}\n" for r, x in zip(rows, pc, strict=True))
        )
        pc = np.array([float(f"{x:.6f}") for x in pc])
        base = ["plink2", "--threads", threads, "--silent"]
        t_import = _run(
            [
                *base,
                "--vcf",
                str(vcf),
                "--max-alleles",
                "2",
                "--set-all-var-ids",
                "@:#",
                "--make-pgen",
                "--out",
                str(tmp / "c"),
            ]
        )
        _run([*base, "--pfile", str(tmp / "c"), "--make-bed", "--out", str(tmp / "c")])
        packed = load_block(tmp / "c", n)
        n_var = packed.shape[0]
        genotypes = n_var * n

        pf = [*base, "--pfile", str(tmp / "c")]
        if not only_glm:
            # warm up (compile or load from cache), then time
            c = kernels.count_genotypes(packed[:10], n, pop, 5)
            kernels.variant_stats(c.overall)
            kernels.variant_stats(c.groups)

            def ours_overall() -> None:
                counts = kernels.count_genotypes(packed, n)
                kernels.variant_stats(counts.overall)

            def ours_groups() -> None:
                counts = kernels.count_genotypes(packed, n, pop, 5)
                kernels.variant_stats(counts.overall)
                kernels.variant_stats(counts.groups)

            t_ours = _best(ours_overall, args.repeats)
            t_ours_groups = _best(ours_groups, args.repeats)
            t_count_only = _best(lambda: kernels.count_genotypes(packed, n), args.repeats)

            t_plink = min(
                _run([*pf, "--freq", "--hardy", "--missing", "--out", str(tmp / "o")])
                for _ in range(args.repeats)
            )
            t_plink_groups = min(
                _run(
                    [
                        *pf,
                        "--pheno",
                        str(pheno),
                        "--loop-cats",
                        "POP",
                        "--freq",
                        "--hardy",
                        "--missing",
                        "--out",
                        str(tmp / "g"),
                    ]
                )
                for _ in range(args.repeats)
            )

            # scikit-allel on a slice held as a GenotypeArray
            import allel

            m = min(args.allel_variants, n_var)
            codes = np.empty((m, n), np.int8)
            for k in range(4):
                codes[:, k::4] = ((packed[:m] >> (2 * k)) & 3)[:, : (n - k + 3) // 4]
            gt = np.zeros((m, n, 2), np.int8)
            gt[..., 0] = codes == 2
            gt[..., 1] = (codes == 1) | (codes == 2)
            gt[codes == 3] = -1
            garr = allel.GenotypeArray(gt)
            t_allel = _best(garr.count_alleles, args.repeats)
            t_ours_slice = _best(lambda: kernels.count_genotypes(packed[:m], n), args.repeats)
            del gt, garr, codes

        # logistic regression
        kernels.logistic_regression(packed[:10], n, case)
        t_glm_ours = _best(lambda: kernels.logistic_regression(packed, n, case), args.repeats)
        glm = [*pf, "--pheno", str(pheno), "--pheno-name", "PHENO"]
        t_glm_plink = _run(
            [*glm, "--glm", "omit-ref", "no-firth", "allow-no-covars", "--out", str(tmp / "glm")]
        )
        result_cov: dict[str, float] = {}
        if not args.skip_glm_covar:
            cov = np.column_stack([pop, male]).astype(np.float64)
            kernels.logistic_regression(packed[:10], n, case, cov)
            start = time.perf_counter()
            kernels.logistic_regression(packed, n, case, cov)
            result_cov["glm_covar_ours_s"] = time.perf_counter() - start
            result_cov["glm_covar_plink2_s"] = _run(
                [
                    *glm,
                    "--covar",
                    str(covar),
                    "--glm",
                    "omit-ref",
                    "no-firth",
                    "hide-covar",
                    "--out",
                    str(tmp / "glmc"),
                ]
            )
            kernels.logistic_regression(packed[:10], n, case, pc[:, None])
            start = time.perf_counter()
            kernels.logistic_regression(packed, n, case, pc[:, None])
            result_cov["glm_pc_ours_s"] = time.perf_counter() - start
            glm_pc = ["--glm", "omit-ref", "no-firth", "hide-covar", "--out", str(tmp / "glmpc")]
            result_cov["glm_pc_plink2_s"] = _run([*glm, "--covar", str(covar_pc), *glm_pc])

    if only_glm:
        out: dict[str, object] = {
            "bench": "kernels",
            "only": "glm",
            "n_samples": n,
            "n_variants": n_var,
            "ratio_glm": round(t_glm_plink / t_glm_ours, 3),
            "glm_ours_s": round(t_glm_ours, 4),
            "glm_plink2_s": round(t_glm_plink, 3),
        }
        if result_cov:
            out["ratio_glm_covar"] = round(
                result_cov["glm_covar_plink2_s"] / result_cov["glm_covar_ours_s"], 3
            )
            out["ratio_glm_pc"] = round(
                result_cov["glm_pc_plink2_s"] / result_cov["glm_pc_ours_s"], 3
            )
            out.update({k: round(v, 3) for k, v in result_cov.items()})
        print(json.dumps(out))
        return 0

    with tempfile.TemporaryDirectory() as cold:
        latency_cold = first_call_latency(cold)
    latency_warm = first_call_latency(None)

    out = {
        "bench": "kernels",
        "n_samples": n,
        "n_variants": n_var,
        "genotypes": genotypes,
        "ratio_freq_hardy_missing": round(t_plink / t_ours, 3),
        "ratio_groups": round(t_plink_groups / t_ours_groups, 3),
        "ratio_glm": round(t_glm_plink / t_glm_ours, 3),
        "ratio_count_vs_allel": round((t_allel / m) / (t_ours_slice / m), 3),
        "ours_freq_hardy_missing_s": round(t_ours, 4),
        "ours_groups_s": round(t_ours_groups, 4),
        "ours_count_only_s": round(t_count_only, 4),
        "ours_count_genotypes_per_s": float(f"{genotypes / t_count_only:.3g}"),
        "plink2_freq_hardy_missing_s": round(t_plink, 4),
        "plink2_loop_cats_s": round(t_plink_groups, 4),
        "plink2_vcf_import_s": round(t_import, 2),
        "allel_count_alleles_per_s": float(f"{m * n / t_allel:.3g}"),
        "glm_ours_s": round(t_glm_ours, 4),
        "glm_plink2_s": round(t_glm_plink, 3),
        "first_call_cold_compile_s": round(latency_cold, 2),
        "first_call_warm_cache_s": round(latency_warm, 3),
    }
    if result_cov:
        out["ratio_glm_covar"] = round(
            result_cov["glm_covar_plink2_s"] / result_cov["glm_covar_ours_s"], 3
        )
        out["ratio_glm_pc"] = round(result_cov["glm_pc_plink2_s"] / result_cov["glm_pc_ours_s"], 3)
        out.update({k: round(v, 3) for k, v in result_cov.items()})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
