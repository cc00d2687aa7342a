"""What binding files to their place costs a reader (schema 6, docs/lifecycle.md).

Against a real OpenBao dev server: the simulated cohort (benchmarks/cohort.py) is ingested
twice, once as a bound dataset (derived keys, one context per file) and once as an unbound
one (how GenoVault wrote before schema 6). Then every variant file of each is read cold
(``pos`` and genotypes, a fresh keyring each run) with the checksum check left out of the
comparison, in three variants: unbound, bound, and bound without unwrapping ahead (each file's
keys then cost a Transit call of their own). Prints one JSON line::

    {"bench": "binding", "files": ..., "unbound_s": ..., "bound_s": ..., "bound_no_prefetch_s": ...}

    python benchmarks/binding.py --samples 5000 --bin-size 1000000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cohort import simulate_cohort  # noqa: E402
from vault.ingest import pipeline  # noqa: E402
from vault.ingest.pipeline import IngestOptions, ingest  # noqa: E402
from vault.keys import signing  # noqa: E402
from vault.keys.bootstrap import bootstrap, mint_role_token  # noqa: E402
from vault.keys.devserver import dev_server  # noqa: E402
from vault.keys.kms import Keyring  # noqa: E402
from vault.store import format as fmt  # noqa: E402
from vault.store.dataset import Store  # noqa: E402
from vault.store.reader import DatasetReader  # noqa: E402


class _Unbound(Keyring):
    """A keyring as GenoVault wrote before schema 6 (benchmark only)."""

    def __init__(self, *args: Any, bound: bool = False, **kw: Any) -> None:
        super().__init__(*args, bound=False, **kw)


class _NoPrefetch(Keyring):
    """A keyring that does not unwrap ahead (benchmark only)."""

    def prefetch(self, files: Any) -> int:
        return 0


def _read_all(store: Store, dataset: str, keyring: Keyring) -> tuple[float, int]:
    signing.forget()
    reader = DatasetReader(store, dataset, keyring)
    files = [f for b in reader.manifest.batches for f in b.variant_files]
    reader._hashed.update(f.path for f in files)  # the checksum check: not compared here
    t0 = time.perf_counter()
    for f in files:
        reader._read(f.path, ["pos", fmt.GENOTYPE_COLUMN])
    return time.perf_counter() - t0, len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--seq-len", type=float, default=50e6)
    ap.add_argument("--bin-size", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    vcf = simulate_cohort(args.samples, None, args.seed, args.seq_len)
    opts = IngestOptions(progress=False, bin_size=args.bin_size)
    with tempfile.TemporaryDirectory() as tmp, dev_server(Path(tmp)) as server:
        root = server.client()
        bootstrap(root)
        ingest_client = server.client(mint_role_token(root, "ingest", ttl="1h"))
        store = Store(Path(tmp) / "store")
        ingest(vcf, "bound", client=ingest_client, store=store, options=opts)
        real = pipeline.Keyring
        pipeline.Keyring = _Unbound  # type: ignore[misc]
        try:
            ingest(vcf, "unbound", client=ingest_client, store=store, options=opts)
        finally:
            pipeline.Keyring = real  # type: ignore[misc]
        query = server.client(mint_role_token(root, "query", ttl="1h"))
        times: dict[str, list[float]] = {"unbound": [], "bound": [], "bound_no_prefetch": []}
        n = 0
        for _ in range(args.runs):  # interleaved, so load changes hit all three alike
            for name, ds, kind in (("unbound", "unbound", Keyring), ("bound", "bound", Keyring),
                                   ("bound_no_prefetch", "bound", _NoPrefetch)):
                dt, n = _read_all(store, ds, kind(query, ds))
                times[name].append(dt)
    out = {"bench": "binding", "samples": args.samples, "files": n, "runs": args.runs,
           **{f"{k}_s": round(statistics.median(v), 4) for k, v in times.items()},
           **{f"all_{k}_s": [round(x, 4) for x in v] for k, v in times.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
