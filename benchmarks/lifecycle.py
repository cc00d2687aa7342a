"""Lifecycle benchmark: key rotation by rewrap, and how fast a withdrawal reaches queries.

Against a real OpenBao dev server (never a mocked Vault): ingest a synthetic cohort into many
partition files, rotate every key (Transit rotate + rewrap of all key material, no Parquet
file rewritten), then withdraw samples while a query service is warm and time until the
next answer excludes them. Prints one JSON line::

    {"bench": "lifecycle", "rotate_s": ..., "rotate_files": ..., "withdraw_effective_ms": ...,
     "compact_genotypes_per_s": ...}

(``compact_genotypes_per_s``: genotypes read per second while the batch holding the withdrawn
samples is decrypted, filtered and re-encrypted by ``lifecycle.compact``.)

    python benchmarks/lifecycle.py --samples 500 --variants 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys import lifecycle, signing
from vault.keys.bootstrap import bootstrap, mint_role_token
from vault.keys.devserver import dev_server
from vault.query.service import Disclosure, QueryService, Selection
from vault.store.dataset import Store


def synth_vcf(path: Path, n_samples: int, n_variants: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"BENCH{i:05d}" for i in range(n_samples)]
    gt = np.array(["0/0", "0/1", "1/1", "./."])
    af = rng.uniform(0.01, 0.5, n_variants)
    with path.open("w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                            "FORMAT", *ids]) + "\n")
        for i in range(n_variants):
            codes = rng.binomial(2, af[i], n_samples)
            fh.write(f"1\t{1000 + i * 5000}\t.\tA\tG\t50\tPASS\t.\tGT\t"
                     + "\t".join(gt[codes]) + "\n")
    return ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--variants", type=int, default=20_000)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--bin-size", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gv-bench-life-") as tmp, \
            dev_server(Path(tmp)) as bao:
        root = bao.client()
        bootstrap(root)
        ingest_c = bao.client(mint_role_token(root, "ingest", ttl="1h"))
        admin = bao.client(mint_role_token(root, "admin", ttl="1h"))
        query = bao.client(mint_role_token(root, "query", ttl="1h"))
        store = Store(Path(tmp) / "store")
        ids: list[str] = []
        for b in range(args.batches):
            vcf = Path(tmp) / f"b{b}.vcf"
            got = synth_vcf(vcf, args.samples, args.variants, seed=b)
            ids += got
            # distinct ids per batch
            text = vcf.read_text().replace("BENCH", f"B{b}X")
            vcf.write_text(text)
            ingest(vcf, "bench", client=ingest_c, store=store,
                   options=IngestOptions(progress=False, bin_size=args.bin_size))
        t0 = time.perf_counter()
        rep = lifecycle.rotate(store, "bench", admin)
        rotate_s = time.perf_counter() - t0
        svc = QueryService(store, lambda: query)
        sel = Selection()
        disc = Disclosure(k=1, min_group_size=1)
        svc.statistic("bench", "frequency", sel, None, disc, limit=10)  # warm
        signing.forget()
        t0 = time.perf_counter()
        lifecycle.withdraw(store, "bench", admin, ["B0X00001", "B0X00002"])
        ans = svc.describe("bench", disc, None)
        svc.statistic("bench", "frequency", sel, None, disc, limit=10)
        withdraw_ms = (time.perf_counter() - t0) * 1000
        assert ans["sample_count"] == round((args.samples * args.batches - 2) / 10) * 10
        crep = lifecycle.compact(store, "bench", query, ingest_c)
        assert crep.batches == ["b0001"]
        print(json.dumps({"bench": "lifecycle", "rotate_s": round(rotate_s, 3),
                          "rotate_files": rep.files, "rotate_transit_rewraps": rep.vault_rewraps,
                          "withdraw_effective_ms": round(withdraw_ms, 1),
                          "compact_genotypes_per_s": round(crep.genotypes_per_s),
                          "compact_s": round(crep.seconds, 3),
                          "samples": args.samples * args.batches,
                          "variants_per_batch": args.variants}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
