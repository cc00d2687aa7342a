"""Regenerate the bundled demo cohort (vault/sample_data/): a small msprime simulation.

300 diploid samples from three simulated populations (island model), 1 Mb of one chromosome,
about 1% missing calls, and a sample sheet with population, sex and a case/control phenotype.
Deterministic (fixed seeds). Run: python benchmarks/make_demo_data.py
"""

from __future__ import annotations

import io
from pathlib import Path

import msprime
import numpy as np
import pysam

OUT = Path(__file__).resolve().parents[1] / "vault" / "sample_data"
POPS = ["pop1", "pop2", "pop3"]
PER_POP = 100


def main() -> None:
    demography = msprime.Demography.island_model([5_000] * 3, migration_rate=2e-5)
    for i, p in enumerate(POPS):
        demography.populations[i].name = p
    ts = msprime.sim_ancestry(samples={p: PER_POP for p in POPS}, demography=demography,
                              sequence_length=1_000_000, recombination_rate=1e-8,
                              random_seed=7)
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=7)
    names = [f"DEMO{i:04d}" for i in range(ts.num_individuals)]
    buf = io.StringIO()
    ts.write_vcf(buf, individual_names=names, contig_id="20", position_transform="legacy")
    rng = np.random.default_rng(7)
    lines = buf.getvalue().splitlines()
    out = []
    for line in lines:
        if line.startswith("#"):
            out.append(line)
            continue
        f = line.split("\t")
        gts = f[9:]
        for j in np.flatnonzero(rng.random(len(gts)) < 0.01):
            gts[j] = "./."
        out.append("\t".join(f[:9] + gts))
    OUT.mkdir(parents=True, exist_ok=True)
    plain = OUT / "demo_cohort.vcf"
    plain.write_text("\n".join(out) + "\n")
    pysam.tabix_compress(str(plain), str(OUT / "demo_cohort.vcf.gz"), force=True)
    plain.unlink()
    pop_of = [POPS[ts.node(ind.nodes[0]).population] for ind in ts.individuals()]
    sex = rng.choice(["F", "M"], size=len(names))
    pheno = rng.choice(["case", "control"], size=len(names), p=[0.3, 0.7])
    with open(OUT / "demo_cohort_samples.tsv", "w") as fh:
        fh.write("sample\tpopulation\tsex\tphenotype\n")
        for n, p, s, ph in zip(names, pop_of, sex, pheno, strict=True):
            fh.write(f"{n}\t{p}\t{s}\t{ph}\n")
    print(f"wrote {OUT}/demo_cohort.vcf.gz ({ts.num_sites} sites, {len(names)} samples)")


if __name__ == "__main__":
    main()
