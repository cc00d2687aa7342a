"""Facts about the demo cohort (vault/sample_data) read straight from its VCF with pysam."""

from __future__ import annotations

from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "vault" / "sample_data"


def rare_snvs(lo: int, n: int) -> list[tuple[str, int, str, str]]:
    """The first ``n`` stored biallelic SNVs of the demo cohort with overall AC 1..3, from
    position ``lo``."""
    import pysam

    out = []
    with pysam.VariantFile(str(DEMO / "demo_cohort.vcf.gz")) as vf:
        for rec in vf:
            alts = rec.alts or ()
            if rec.pos >= lo and len(alts) == 1 and len(rec.ref or "") == 1 \
                    and len(alts[0]) == 1:
                ac = sum(a == 1 for s in rec.samples.values() for a in (s["GT"] or ())
                         if a is not None)
                if 1 <= ac <= 3:
                    out.append((str(rec.chrom), int(rec.pos), str(rec.ref), str(alts[0])))
                    if len(out) == n:
                        break
    assert len(out) == n
    return out


def unstored_positions(chrom: str, lo: int, n: int) -> list[int]:
    """The first ``n`` positions from ``lo`` at which the demo VCF has no record."""
    import pysam

    with pysam.VariantFile(str(DEMO / "demo_cohort.vcf.gz")) as vf:
        stored = {rec.pos for rec in vf if rec.chrom == chrom}
    out = [p for p in range(lo, lo + 10 * n + 1000) if p not in stored][:n]
    assert len(out) == n
    return out
