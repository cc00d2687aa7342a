"""The query service: plan -> read -> kernels -> disclosure control.

The one place where a statistic is computed for a caller. It receives the obligations of a
policy decision (it never decides access itself), reads the partitions that overlap the
request through the store's decrypting reader (with the service's own Vault identity),
counts genotypes per variant and group with the numba kernels, derives the statistic, and
applies disclosure control before anything leaves: small cells and everything derived from
them become null, with a machine-readable reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels import count_genotypes
from vault.errors import ConfigError
from vault.keys.kms import Keyring
from vault.privacy.disclosure import NONE, REASON_NAMES, Protection, protect, small_cells
from vault.query.cache import PartitionCache
from vault.query.cohort import Cohort, Grouping
from vault.query.stats import STATISTICS, Statistic
from vault.store.dataset import Store
from vault.store.manifest import Manifest
from vault.store.reader import DatasetReader, GenotypeBlock, Region

#: the most variants one page of an answer holds (the caller pages with ``cursor``)
MAX_PAGE = 5000
DEFAULT_PAGE = 1000
#: regions longer than this need a policy allowing it (``max_region_bp``)
SITE_COLUMNS = ("pos", "ref", "alt", "id")


@dataclass(frozen=True)
class Disclosure:
    """What disclosure control a statistic answer needs (from the decision's obligations)."""

    k: int = 11
    min_group_size: int = 20
    tier: str = "controlled"
    rare_max_ac: int | None = None


@dataclass(frozen=True)
class Selection:
    """Which variants: regions and/or a list of (chrom, pos, ref, alt); nothing = everything.

    Overlapping regions are merged, so no variant is listed twice.
    """

    region: Region | None = None
    variants: tuple[tuple[str, int, str, str], ...] | None = None
    more_regions: tuple[Region, ...] = ()

    @property
    def explicit_regions(self) -> list[Region]:
        return ([self.region] if self.region else []) + list(self.more_regions)

    def regions(self) -> list[Region | None]:
        spans = list(self.explicit_regions)
        spans += [Region(c, p, p) for c, p in {(v[0], v[1]) for v in self.variants or ()}]
        if not spans:
            return [] if self.variants is not None else [None]
        merged: list[Region] = []
        big = 1 << 62
        for r in sorted(spans, key=lambda r: (r.chrom, r.start)):
            last = merged[-1] if merged else None
            if last is not None and last.chrom == r.chrom and (
                    last.end is None or r.start <= last.end + 1):
                end = None if last.end is None or r.end is None else max(last.end, r.end)
                merged[-1] = Region(last.chrom, last.start, end)
            else:
                merged.append(r)
        return [Region(r.chrom, r.start, None if r.end is None or r.end >= big else r.end)
                for r in merged]


@dataclass
class _Counted:
    """Counts of the selected variants of one partition."""

    contig: str
    pos: np.ndarray
    ref: list[str]
    alt: list[str]
    ids: list[str]
    overall: np.ndarray  # (V, 4)
    groups: np.ndarray  # (V, G, 4)
    stats_overall: Any = None  # VariantStats (V,)
    stats_groups: Any = None  # VariantStats (V, G)


@dataclass
class _Version:
    manifest: Manifest
    reader: DatasetReader
    cohort: Cohort
    key: str


@dataclass
class QueryService:
    """Aggregate statistics over a store, with one Vault identity for unwrapping keys."""

    store: Store
    vault_client: Callable[[], Any]
    cache_bytes: int = 512 << 20
    _versions: dict[str, _Version] = field(default_factory=dict)
    _keyrings: dict[str, Keyring] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.blocks: PartitionCache[GenotypeBlock] = PartitionCache(
            self.cache_bytes, lambda b: int(b.packed.nbytes if b.packed is not None else 0)
            + 64 * b.n_variants)

    # -- dataset versions ------------------------------------------------------------------
    def version(self, dataset: str) -> _Version:
        """The current committed version of ``dataset`` (reloaded when its manifest changes)."""
        manifest = self.store.manifest(dataset)
        # the manifest's commit counter: a withdrawal or rotation is seen at the next request
        key = f"{manifest.uid}:{manifest.version}:{manifest.updated_at}:{len(manifest.batches)}"
        with self._lock:
            cur = self._versions.get(dataset)
            if cur is not None and cur.key == key:
                return cur
            keyring = self._keyrings.get(dataset)
            if keyring is None:
                keyring = self._keyrings[dataset] = Keyring(self.vault_client(), dataset)
            elif cur is not None:
                keyring.clear_caches()  # keys may have been rotated or retired
        reader = DatasetReader(self.store, dataset, keyring)
        version = _Version(reader.manifest, reader, Cohort.load(reader), key)
        with self._lock:
            self._versions[dataset] = version
        if cur is not None:
            self.blocks.clear(dataset)
        return version

    def forget_keys(self) -> None:
        """Drop cached key-encryption keys and plaintext (after rotation, revocation)."""
        with self._lock:
            for kr in self._keyrings.values():
                kr.clear_caches()
            self._keyrings.clear()
            self._versions.clear()
        self.blocks.clear()

    # -- describing ------------------------------------------------------------------------
    def describe(self, dataset: str, disclosure: Disclosure,
                 allowed_columns: Sequence[str] | None) -> dict[str, Any]:
        """Sample count (rounded to 10), contigs, group columns and their groups (sizes
        rounded to 10, groups under the minimum size named but without a size)."""
        v = self.version(dataset)
        columns = [c for c in v.cohort.columns
                   if allowed_columns is None or c in allowed_columns]
        groups = {}
        for col in columns:
            g = v.cohort.grouping(col)
            groups[col] = [
                {"name": name, "size": _round10(int(n)) if n >= disclosure.min_group_size
                 else None, "queryable": bool(n >= disclosure.min_group_size)}
                for name, n in zip(g.names, g.sizes.tolist(), strict=True)]
        return {"sample_count": _round10(v.cohort.n_samples), "contigs": list(v.manifest.contigs),
                "variant_rows": v.manifest.variant_rows, "group_columns": groups,
                "dataset_version": v.key}

    # -- statistics ------------------------------------------------------------------------
    def statistic(self, dataset: str, name: str, selection: Selection, group_by: str | None,
                  disclosure: Disclosure, cursor: int = 0,
                  limit: int = DEFAULT_PAGE) -> dict[str, Any]:
        """One page of per-variant answers for statistic ``name`` (see vault.query.stats)."""
        stat = STATISTICS.get(name)
        if stat is None:
            raise ConfigError(f"unknown statistic {name!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
        if cursor < 0:
            raise ConfigError("cursor must be >= 0")
        v = self.version(dataset)
        grouping, refused = self._grouping(v, group_by, disclosure)
        rows: list[dict[str, Any]] = []
        seen = 0
        truncated = False
        suppressed = complementary = rare = omitted = 0
        for counted in self._counts(v, selection, grouping):
            prot = protect(counted.overall, counted.groups,
                           grouping.sizes if grouping else np.zeros(0, np.int64),
                           disclosure.k, stat.kind, disclosure.rare_max_ac)
            counted.stats_overall = stat.compute(counted.overall)
            counted.stats_groups = stat.compute(counted.groups)
            wanted = self._wanted(counted, selection)
            # A rare variant's mere presence identifies its carriers: a variant whose overall
            # AC or REF count is 1..k-1 is not listed at all (as if absent).
            rare_site = small_cells(counted.overall, disclosure.k, "alleles")
            omitted += int((wanted & rare_site).sum())
            for i in np.flatnonzero(wanted & ~rare_site).tolist():
                if seen < cursor:
                    seen += 1
                    continue
                if len(rows) >= limit:
                    truncated = True
                    break
                rows.append(self._row(stat, counted, i, prot, grouping))
                seen += 1
            if truncated:
                break
        for row in rows:
            for cell in row["suppressed"]:
                suppressed += cell["reason"] == "count<k"
                complementary += cell["reason"] == "complementary"
                rare += cell["reason"] == "rare_variant"
        return {
            "dataset_version": v.key,
            "statistic": name,
            "group_by": group_by,
            "variants": rows,
            "count": len(rows),
            "truncated": truncated,
            "next_cursor": cursor + len(rows) if truncated else None,
            "disclosure": {
                "tier": disclosure.tier, "k": disclosure.k,
                "min_group_size": disclosure.min_group_size,
                "kind": stat.kind,
                "suppressed_cells": suppressed, "complementary_cells": complementary,
                "rare_variant_cells": rare,
                "omitted_variants": omitted,
                "refused_groups": refused,
                "rules": _rules(stat.kind),
            },
        }

    def group_sizes(self, dataset: str, group_by: str) -> dict[str, int]:
        g = self.version(dataset).cohort.grouping(group_by)
        return dict(zip(g.names, g.sizes.tolist(), strict=True))

    # -- internals -------------------------------------------------------------------------
    def _grouping(self, v: _Version, group_by: str | None,
                  disclosure: Disclosure) -> tuple[Grouping | None, list[dict[str, Any]]]:
        if group_by is None:
            return None, []
        if group_by not in v.cohort.columns:
            raise ConfigError(f"unknown group-by column {group_by!r}; this dataset has: "
                              f"{', '.join(v.cohort.columns) or 'none'}")
        g = v.cohort.grouping(group_by)
        keep = g.sizes >= disclosure.min_group_size
        refused = [{"group": name, "reason": "group_size<min", "min_group_size":
                    disclosure.min_group_size} for name, ok in zip(g.names, keep, strict=True)
                   if not ok]
        return g.restrict(keep), refused

    def _block(self, v: _Version, contig_index: int, bin_index: int) -> GenotypeBlock | None:
        size = v.manifest.partition.bin_size
        region = Region(v.manifest.contigs[contig_index], max(1, bin_index * size),
                        (bin_index + 1) * size - 1)

        def load() -> GenotypeBlock | None:
            return next(iter(v.reader.blocks(region, site_columns=SITE_COLUMNS)), None)

        return self.blocks.get_or_load((v.manifest.dataset, v.key, contig_index, bin_index),
                                       load)  # type: ignore[arg-type]

    def _counts(self, v: _Version, selection: Selection,
                grouping: Grouping | None) -> Iterator[_Counted]:
        codes = grouping.codes if grouping else np.full(v.cohort.n_samples, -1, np.int32)
        n_groups = len(grouping.names) if grouping else 0
        for region in selection.regions():
            for ci, bi in v.reader.partitions(region):
                block = self._block(v, ci, bi)
                if block is None or block.packed is None:
                    continue
                pos = block.sites.column("pos").to_numpy()
                lo, hi = 0, pos.size
                if region is not None:
                    lo = int(np.searchsorted(pos, region.start, "left"))
                    hi = pos.size if region.end is None else int(
                        np.searchsorted(pos, region.end, "right"))
                if hi <= lo:
                    continue
                counts = count_genotypes(block.packed[lo:hi], block.n_samples, codes, n_groups)
                sites = block.sites.slice(lo, hi - lo)
                yield _Counted(block.contig, pos[lo:hi], sites.column("ref").to_pylist(),
                               sites.column("alt").to_pylist(), sites.column("id").to_pylist(),
                               counts.overall, counts.groups)

    @staticmethod
    def _wanted(c: _Counted, selection: Selection) -> np.ndarray:
        if selection.variants is None:
            return np.ones(c.pos.size, np.bool_)
        want = {(v[0], v[1], v[2], v[3]) for v in selection.variants}
        out = np.array([(c.contig, int(p), r, a) in want
                        for p, r, a in zip(c.pos.tolist(), c.ref, c.alt, strict=True)],
                       np.bool_).reshape(c.pos.size)
        for r in selection.explicit_regions:
            if r.chrom == c.contig:
                out |= (c.pos >= r.start) & (c.pos <= (r.end if r.end is not None else c.pos))
        return out

    @staticmethod
    def _row(stat: Statistic, c: _Counted, i: int, prot: Protection,
             grouping: Grouping | None) -> dict[str, Any]:
        row: dict[str, Any] = {"chrom": c.contig, "pos": int(c.pos[i]), "ref": c.ref[i],
                               "alt": c.alt[i]}
        vid = c.ids[i]
        row["id"] = None if vid in (None, ".") else vid
        suppressed: list[dict[str, Any]] = []
        row["overall"] = stat.cell(c.stats_overall, (i,), prot.overall[i] == NONE)
        if prot.overall[i] != NONE:
            suppressed.append({"cell": "overall", "reason": REASON_NAMES[int(prot.overall[i])]})
        if grouping is not None:
            groups = {}
            for g, name in enumerate(grouping.names):
                ok = prot.groups[i, g] == NONE
                groups[name] = stat.cell(c.stats_groups, (i, g), ok)
                if not ok:
                    suppressed.append({"cell": f"groups.{name}",
                                       "reason": REASON_NAMES[int(prot.groups[i, g])]})
            row["groups"] = groups
        row["suppressed"] = suppressed
        return row


def _rules(kind: str) -> list[str]:
    what = "AC and REF allele counts" if kind == "alleles" else \
        "genotype counts (hom-ref, het, hom-alt) and allele counts"
    return [f"cells whose {what} include a count of 1..k-1 are null with everything derived "
            "from them; 0 is shown as 0",
            "complementary suppression: no suppressed cell can be recovered as the overall "
            "count minus the other groups",
            "variants whose overall AC or REF count is 1..k-1 are not listed (omitted_variants)",
            "groups smaller than min_group_size are refused (their samples stay in overall)",
            "in released cells, missing-call and called counts (and AN) are released as "
            "measured: they describe measurement, not genotypes"]


def _round10(n: int) -> int:
    return int(round(n / 10.0) * 10)

