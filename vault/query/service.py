"""The query service: plan -> read -> kernels -> disclosure control.

The one place where a statistic is computed for a caller. It receives the obligations of a
policy decision (it never decides access itself), reads the partitions that overlap the
request through the store's decrypting reader (with the service's own Vault identity),
counts genotypes per variant and group with the numba kernels, derives the statistic, and
applies disclosure control before anything leaves: small cells and everything derived from
them become null, with a machine-readable reason.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels import count_genotypes
from vault.errors import ConfigError, DatasetNotFound, IntegrityError
from vault.keys.kms import Keyring
from vault.privacy.disclosure import (
    COMPLEMENTARY,
    NONE,
    RARE,
    REASON_NAMES,
    SMALL,
    Protection,
    protect,
    small_cells,
)
from vault.query.cache import PartitionCache
from vault.query.cohort import Cohort, Grouping
from vault.query.sitefilter import FIXED_COLUMNS, SiteFilter, sites_view
from vault.query.stats import STATISTICS, STATUS_NAMES, Statistic
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.manifest import Manifest
from vault.store.reader import DatasetReader, GenotypeBlock, Region

#: the most variants one page of an answer holds (the caller pages with ``cursor``)
MAX_PAGE = 5000
#: the same for a columnar (Arrow IPC) answer: rows cost bytes there, not Python objects
MAX_TABLE_PAGE = 1_000_000
#: partitions decrypted and counted ahead of the one being protected (worker threads)
PREFETCH = 2
#: registered tier: the fewest variants noised (and charged) together as a page reaches them
DP_MIN_RUN = 8
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
    #: registered tier: a vault.privacy.dp.DPSession; counts are noised before anything else
    noise: Any = field(default=None, compare=False)


@dataclass
class FilterTally:
    """How many candidate variants a site filter saw and kept (for the answer's disclosure)."""

    considered: int = 0
    kept: int = 0


@dataclass(frozen=True)
class Selection:
    """Which variants: regions and/or a list of (chrom, pos, ref, alt); nothing = everything.

    Overlapping regions are merged, so no variant is listed twice. ``site_filter`` then keeps
    only the candidates whose site columns satisfy it (vault.query.sitefilter); ``tally``, if
    given, counts what it saw and kept.
    """

    region: Region | None = None
    variants: tuple[tuple[str, int, str, str], ...] | None = None
    more_regions: tuple[Region, ...] = ()
    site_filter: SiteFilter | None = None
    tally: FilterTally | None = field(default=None, compare=False)

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
    #: ref, alt and id as Arrow arrays (columnar answers take from them without Python)
    strings: dict[str, pa.Array] | None = None
    #: registered tier: the exact overall counts behind noisy ``overall`` (never released;
    #: they decide only whether a variant is rare, and so not listed)
    exact: np.ndarray | None = None

    def sliced(self, lo: int, hi: int) -> _Counted:
        return _Counted(self.contig, self.pos[lo:hi], self.ref[lo:hi], self.alt[lo:hi],
                        self.ids[lo:hi], self.overall[lo:hi], self.groups[lo:hi],
                        None if self.strings is None else
                        {k: a.slice(lo, hi - lo) for k, a in self.strings.items()},
                        None if self.exact is None else self.exact[lo:hi])

    def taken(self, idx: np.ndarray) -> _Counted:
        """The variants ``idx`` (sorted) only."""
        rows = idx.tolist()
        return _Counted(self.contig, self.pos[idx], [self.ref[i] for i in rows],
                        [self.alt[i] for i in rows], [self.ids[i] for i in rows],
                        self.overall[idx], self.groups[idx],
                        None if self.strings is None else
                        {k: a.take(pa.array(idx, pa.int64())) for k, a in self.strings.items()},
                        None if self.exact is None else self.exact[idx])

    def with_counts(self, overall: np.ndarray, groups: np.ndarray) -> _Counted:
        return _Counted(self.contig, self.pos, self.ref, self.alt, self.ids, overall, groups,
                        self.strings, self.overall if self.exact is None else self.exact)

    def column(self, name: str, take: np.ndarray) -> pa.Array:
        """``ref``, ``alt`` or ``id`` of variants ``take`` ('.' ids as null)."""
        if self.strings is not None:
            arr = self.strings[name].take(pa.array(take, pa.int64()))
        else:
            src = {"ref": self.ref, "alt": self.alt, "id": self.ids}[name]
            arr = pa.array([src[i] for i in take.tolist()], pa.string())
        if name == "id":
            arr = pc.if_else(pc.equal(arr, "."), pa.scalar(None, pa.string()), arr)
        return arr


@dataclass
class _Piece:
    """The variants ``take`` of one partition's counts on a page, and their protection."""

    counted: _Counted
    take: np.ndarray
    prot: Protection


@dataclass
class _Version:
    manifest: Manifest
    reader: DatasetReader
    cohort: Cohort
    key: str
    #: what the DP ledger keeps released cells and member budgets under (release_key_of)
    release_key: str


@dataclass
class QueryService:
    """Aggregate statistics over a store, with one Vault identity for unwrapping keys."""

    store: Store
    vault_client: Callable[[], Any]
    cache_bytes: int = 512 << 20
    #: runs partition counts on a Dask cluster when set (vault.query.distributed)
    executor: Any = None
    _versions: dict[str, _Version] = field(default_factory=dict)
    _keyrings: dict[str, Keyring] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.blocks: PartitionCache[GenotypeBlock] = PartitionCache(
            self.cache_bytes, lambda b: int(b.packed.nbytes if b.packed is not None else 0)
            + 64 * b.n_variants)
        self.counts_cache: PartitionCache[_Counted] = PartitionCache(
            max(self.cache_bytes // 4, 0) if self.cache_bytes else 0,
            lambda c: int(c.overall.nbytes + c.groups.nbytes + 200 * c.pos.size))
        #: site-filter results per partition and filter (one bool per variant)
        self.site_masks: PartitionCache[np.ndarray] = PartitionCache(
            max(self.cache_bytes // 16, 0) if self.cache_bytes else 0,
            lambda m: int(m.nbytes) + 200)

    # -- dataset versions ------------------------------------------------------------------
    def version(self, dataset: str) -> _Version:
        """The current committed version of ``dataset`` (reloaded when its manifest changes).
        A dataset found destroyed (or gone) also drops what this process still held of it:
        decrypted partitions, counts and cached key-encryption keys."""
        try:
            return self._version(dataset)
        except DatasetNotFound:
            with self._lock:
                self._versions.pop(dataset, None)
                keyring = self._keyrings.pop(dataset, None)
            if keyring is not None:
                keyring.clear_caches()
            for cache in (self.blocks, self.counts_cache, self.site_masks):
                cache.retire(dataset, None)
            raise

    def _version(self, dataset: str) -> _Version:
        manifest = self.store.manifest(dataset)
        key = version_key_of(manifest)
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
        version = _Version(reader.manifest, reader, Cohort.load(reader), key,
                           release_key_of(reader.manifest))
        with self._lock:
            newest = self._versions.get(dataset)
            if newest is not None and newest.manifest.uid == version.manifest.uid \
                    and newest.manifest.version > version.manifest.version:
                return newest  # a later commit was installed meanwhile: never go back
            self._versions[dataset] = version
        # the other versions' plaintext goes, and stays out: a request still running on the
        # old version cannot put a withdrawn participant's blocks back
        for cache in (self.blocks, self.counts_cache, self.site_masks):
            cache.retire(dataset, key)
        return version

    def forget_keys(self) -> None:
        """Drop cached key-encryption keys and plaintext (after rotation, revocation)."""
        with self._lock:
            for kr in self._keyrings.values():
                kr.clear_caches()
            self._keyrings.clear()
            self._versions.clear()
        self.blocks.clear()
        self.counts_cache.clear()
        self.site_masks.clear()

    # -- describing ------------------------------------------------------------------------
    def describe(self, dataset: str, disclosure: Disclosure,
                 allowed_columns: Sequence[str] | None) -> dict[str, Any]:
        """Sample count (rounded to 10), contigs, group columns and their queryable groups
        (sizes rounded to 10). Groups under the minimum size are not named — the mere name of
        a one-person category (a rare diagnosis) would say something about someone — only
        counted."""
        v = self.version(dataset)
        columns = [c for c in v.cohort.columns
                   if allowed_columns is None or c in allowed_columns]
        groups: dict[str, list[dict[str, Any]]] = {}
        small: dict[str, int] = {}
        for col in columns:
            g = v.cohort.grouping(col)
            ok = g.sizes >= disclosure.min_group_size
            groups[col] = [{"name": name, "size": _round10(int(n)), "queryable": True}
                           for name, n, keep in zip(g.names, g.sizes.tolist(), ok, strict=True)
                           if keep]
            small[col] = int((~ok).sum())
        return {"sample_count": _round10(v.cohort.n_samples), "contigs": list(v.manifest.contigs),
                "variant_rows": v.manifest.variant_rows, "group_columns": groups,
                "groups_below_minimum": small, "dataset_version": v.key}

    # -- statistics ------------------------------------------------------------------------
    def statistic(self, dataset: str, name: str, selection: Selection, group_by: str | None,
                  disclosure: Disclosure, cursor: int = 0,
                  limit: int = DEFAULT_PAGE) -> dict[str, Any]:
        """One page of per-variant answers for statistic ``name`` (see vault.query.stats).

        Paging is cheap: counts are cached per partition, partitions before the cursor are
        skipped by their number of listed variants, and statistics and suppression are
        computed for the variants of the page only (suppression is per variant).
        """
        stat, v, grouping, refused, pieces, truncated, omitted, tally = self._page(
            dataset, name, selection, group_by, disclosure, cursor, limit, MAX_PAGE)
        rows: list[dict[str, Any]] = []
        for piece in pieces:
            rows += self._rows(stat, piece, grouping)
        return self._envelope(v, stat, group_by, disclosure, pieces, len(rows), truncated,
                              cursor, omitted, refused,
                              self.filter_disclosure(selection, tally)) | {"variants": rows}

    def statistic_table(self, dataset: str, name: str, selection: Selection,
                        group_by: str | None, disclosure: Disclosure, cursor: int = 0,
                        limit: int = MAX_TABLE_PAGE) -> tuple[dict[str, Any], pa.Table]:
        """:meth:`statistic` as a columnar page: the envelope (everything but the rows) and
        one Arrow table of the rows, one row per variant. Columns: ``chrom``, ``pos``,
        ``ref``, ``alt``, ``id``, then per cell (``overall``, ``groups.<name>``) its fields
        (``<cell>.n``, ``<cell>.af`` …, ``<cell>.status``) and ``<cell>.suppressed`` (the
        reason, null when released). A suppressed cell's fields are null but ``n``; a value
        that was not assessed (NaN) is null too; 0 is 0. Same disclosure control as the
        JSON rows (the same pieces are protected the same way)."""
        stat, v, grouping, refused, pieces, truncated, omitted, tally = self._page(
            dataset, name, selection, group_by, disclosure, cursor, limit, MAX_TABLE_PAGE)
        table = self._table(stat, pieces, grouping)
        return self._envelope(v, stat, group_by, disclosure, pieces, table.num_rows,
                              truncated, cursor, omitted, refused,
                              self.filter_disclosure(selection, tally)), table

    def charge(self, dataset: str, selection: Selection, group_by: str | None,
               disclosure: Disclosure) -> None:
        """Registered tier: noise (and charge, once per principal and dataset content) every
        variant an answer over ``selection`` grouped by ``group_by`` may list -- all of
        them, as pages to its end would -- without building an answer. For a filter that
        then picks among them on their noisy values (Beacon's alleles, variantType, group
        filters: vault/api/routes/beacon.py), so that what it costs never depends on which
        of them it picks. Nothing on the controlled tier."""
        if disclosure.noise is None:
            return
        v = self.version(dataset)
        grouping, _ = self._grouping(v, group_by, disclosure)
        for _ in self._noised(self._counts(v, selection, grouping), v, selection, group_by,
                              grouping, disclosure, lambda: 1 << 62, [0]):
            pass

    def _page(self, dataset: str, name: str, selection: Selection, group_by: str | None,
              disclosure: Disclosure, cursor: int, limit: int, max_limit: int
              ) -> tuple[Statistic, _Version, Grouping | None, int, list[_Piece], bool, int,
                         FilterTally]:
        """The protected pieces of one page, whether more follow, the omitted count and what
        the site filter (if any) saw."""
        stat = STATISTICS.get(name)
        if stat is None:
            raise ConfigError(f"unknown statistic {name!r}")
        if not 1 <= limit <= max_limit:
            raise ConfigError(f"limit must be between 1 and {max_limit}")
        if cursor < 0:
            raise ConfigError("cursor must be >= 0")
        v = self.version(dataset)
        grouping, refused = self._grouping(v, group_by, disclosure)
        sizes = grouping.sizes if grouping else np.zeros(0, np.int64)
        pieces: list[_Piece] = []
        seen = omitted = n_rows = 0
        truncated = False
        tally = FilterTally()

        def need() -> int:  # variants this page still has to look at (read as it goes)
            return max(0, cursor - seen) + limit - n_rows

        if disclosure.noise is not None and selection.variants:
            self._charge_requested(v, selection, group_by, grouping, disclosure)

        skipped = [0]  # registered tier: wanted variants left unnoised for being rare
        for counted in self._noised(self._counts(v, selection, grouping, tally), v,
                                    selection, group_by, grouping, disclosure, need, skipped):
            wanted = self._wanted(counted, selection)
            rare_site = self._unlisted(counted, disclosure)
            omitted += int((wanted & rare_site).sum())
            listed = np.flatnonzero(wanted & ~rare_site)
            if n_rows >= limit:
                # the page is full: ``truncated`` says that a variant it may list follows,
                # never that one is stored (regions [<a common variant>, <P>] with limit 1
                # were truncated exactly when a rare variant is stored at P). The registered
                # tier's runs hold listable variants only (``_noised``), so one more run
                # says so whatever its noise — and the page charges no further run
                if listed.size or disclosure.noise is not None:
                    truncated = True
                    break
                continue
            if seen + listed.size <= cursor:
                seen += listed.size
                continue
            start = max(0, cursor - seen)
            room = limit - n_rows
            take = listed[start:start + room]
            if take.size:
                prot = protect(counted.overall[take], counted.groups[take], sizes,
                               disclosure.k, stat.kind, disclosure.rare_max_ac)
                pieces.append(_Piece(counted, take, prot))
                n_rows += take.size
            seen += start + take.size
            if start + take.size < listed.size:
                truncated = True
                break
        return stat, v, grouping, refused, pieces, truncated, omitted + skipped[0], tally

    def _unlisted(self, c: _Counted, disclosure: Disclosure) -> np.ndarray:
        """The variants of ``c`` an answer does not list. A rare variant's mere presence
        identifies its carriers: a variant whose overall AC or REF count is 1..k-1 is not
        listed at all (as if absent). On the registered tier a noisy AC (or REF count) of 0
        is not listed either (a variant is listed when its exact and its noisy counts reach
        k): listed, a noisy 0 would read as "stored, carried by no one"."""
        rare = self._rare_sites(c, disclosure.k)
        if disclosure.noise is not None:
            o = np.asarray(c.overall, np.int64)
            rare = rare | (o[:, 1] + 2 * o[:, 2] == 0) | (2 * o[:, 0] + o[:, 1] == 0)
        return rare

    @staticmethod
    def _listable(c: _Counted, k: int) -> np.ndarray:
        """Registered tier, before noise: the variants whose exact overall AC and REF
        counts are not 1..k-1, the only ones an answer may list (:meth:`_rare_sites`) and so
        the only ones noised and charged for a region."""
        return ~small_cells(c.overall if c.exact is None else c.exact, k, "alleles")

    @staticmethod
    def _rare_sites(c: _Counted, k: int) -> np.ndarray:
        """The variants of ``c`` that are not listed for being rare: overall AC or REF count
        1..k-1 -- on the registered tier by the exact counts behind the noisy ones too, so
        that a rare variant is never listed whatever its noise (an allele the cohort does not
        hold is never listed, so a rare one listed, as a quarter of AC 1..5 came out at a
        noisy AC >= k, said that its carrier is in the cohort)."""
        rare = small_cells(c.overall, k, "alleles")
        if c.exact is not None:
            rare = rare | small_cells(c.exact, k, "alleles")
        return rare

    def _charge_requested(self, v: _Version, selection: Selection, group_by: str | None,
                          grouping: Grouping | None, disclosure: Disclosure) -> None:
        """Registered tier, a list of variants: every requested variant's cells are noised
        (and charged, once per principal and dataset version) on the first page, stored or
        not — one the dataset does not hold from zero counts, as presence does — so that what
        an answer costs says nothing about which of the variants the cohort holds (charged
        only when stored, a rare allele cost ε and an absent one nothing). The pages then
        reuse these cells. Site filters and regions do not change what is charged here."""
        from vault.privacy.dp import noisy_counts

        assert selection.variants is not None
        plain = Selection(variants=selection.variants)
        stored: dict[tuple[str, int, str, str], tuple[np.ndarray, np.ndarray]] = {}
        for c in self._counts(v, plain, grouping):
            for i in np.flatnonzero(self._wanted(c, plain)).tolist():
                stored[(c.contig, int(c.pos[i]), c.ref[i], c.alt[i])] = (c.overall[i],
                                                                          c.groups[i])
        names = grouping.names if grouping else ()
        sizes = grouping.sizes if grouping else np.zeros(0, np.int64)
        absent_o = np.array([v.cohort.n_samples, 0, 0, 0], np.int64)
        absent_g = np.zeros((len(names), 4), np.int64)
        absent_g[:, 0] = sizes
        wanted = sorted(set(selection.variants))
        for contig in sorted({w[0] for w in wanted}):
            keys = [w for w in wanted if w[0] == contig]
            counts = [stored.get(k, (absent_o, absent_g)) for k in keys]
            noisy_counts(disclosure.noise, v.release_key, contig,
                         np.array([k[1] for k in keys], np.int64), [k[2] for k in keys],
                         [k[3] for k in keys], np.stack([o for o, _ in counts]),
                         np.stack([g for _, g in counts]).reshape(len(keys), len(names), 4),
                         np.ones(len(keys), np.bool_), group_by, names)

    def _noised(self, parts: Iterator[_Counted], v: _Version, selection: Selection,
                group_by: str | None, grouping: Grouping | None, disclosure: Disclosure,
                need: Callable[[], int], skipped: list[int]) -> Iterator[_Counted]:
        """The counts as released: exact for the controlled tier; for the registered tier
        (``disclosure.noise``), the wanted variants of each partition in runs as long as
        the page still ``need``s (at least DP_MIN_RUN), each run noised (and its new cells
        charged to the budget) only when the page gets to it. A page charges for the
        variants up to its end (those before the cursor too: they decide what is listed;
        asked again they are free), plus at most DP_MIN_RUN − 1 more — not for the rest of
        the partition.

        A variant rare by its exact counts (:meth:`_listable`) is never listed whatever its
        noise, so it is neither noised nor charged (only counted in ``skipped[0]``): what a
        region costs is then the number of variants the exact rule lists there, which its
        pages show, and never says that a rare variant is stored at a position."""
        if disclosure.noise is None:
            yield from parts
            return
        from vault.privacy.dp import noisy_counts

        names = grouping.names if grouping else ()
        for counted in parts:
            wanted = self._wanted(counted, selection)
            listable = self._listable(counted, disclosure.k)
            skipped[0] += int((wanted & ~listable).sum())
            idx = np.flatnonzero(wanted & listable)
            at = 0
            while at < idx.size:
                step = max(DP_MIN_RUN, need())
                run = counted.taken(idx[at:at + step])
                at += step
                noisy_o, noisy_g = noisy_counts(
                    disclosure.noise, v.release_key, run.contig, run.pos, run.ref, run.alt,
                    run.overall, run.groups, np.ones(run.pos.size, np.bool_), group_by,
                    names)
                # a new object: the cached exact counts must stay exact for other callers
                yield run.with_counts(noisy_o, noisy_g)

    @staticmethod
    def _envelope(v: _Version, stat: Statistic, group_by: str | None, disclosure: Disclosure,
                  pieces: list[_Piece], count: int, truncated: bool, cursor: int,
                  omitted: int, refused: int, extra: dict[str, Any]) -> dict[str, Any]:
        def n(reason: int) -> int:
            return sum(p.prot.count(reason) for p in pieces)

        return {
            "dataset_version": v.key,
            "statistic": stat.name,
            "group_by": group_by,
            "count": count,
            "truncated": truncated,
            "next_cursor": cursor + count if truncated else None,
            "disclosure": {
                "tier": disclosure.tier, "k": disclosure.k,
                "min_group_size": disclosure.min_group_size,
                "kind": stat.kind,
                "suppressed_cells": n(SMALL), "complementary_cells": n(COMPLEMENTARY),
                "rare_variant_cells": n(RARE),
                "omitted_variants": omitted,
                "refused_groups": refused,
                "rules": _rules(stat.kind),
                **extra,
            },
        }

    @staticmethod
    def filter_disclosure(selection: Selection, tally: FilterTally | None) -> dict[str, Any]:
        """The ``site_filter`` entry of an answer's disclosure (nothing without a filter)."""
        sf = selection.site_filter
        if sf is None:
            return {}
        t = tally or FilterTally()
        return {"site_filter": sf.describe(t.considered, t.kept)}

    def group_sizes(self, dataset: str, group_by: str) -> dict[str, int]:
        g = self.version(dataset).cohort.grouping(group_by)
        return dict(zip(g.names, g.sizes.tolist(), strict=True))

    # -- internals -------------------------------------------------------------------------
    def _grouping(self, v: _Version, group_by: str | None,
                  disclosure: Disclosure) -> tuple[Grouping | None, int]:
        """The released groups of ``group_by`` and how many were refused for their size
        (counted, not named: the name of a tiny group says something about its members)."""
        if group_by is None:
            return None, 0
        if group_by not in v.cohort.columns:
            raise ConfigError(f"unknown group-by column {group_by!r}; this dataset has: "
                              f"{', '.join(v.cohort.columns) or 'none'}")
        g = v.cohort.grouping(group_by)
        keep = g.sizes >= disclosure.min_group_size
        return g.restrict(keep), int((~keep).sum())

    def _block(self, v: _Version, contig_index: int, bin_index: int) -> GenotypeBlock | None:
        size = v.manifest.partition.bin_size
        region = Region(v.manifest.contigs[contig_index], max(1, bin_index * size),
                        (bin_index + 1) * size - 1)

        def load() -> GenotypeBlock | None:
            return next(iter(v.reader.blocks(region, site_columns=SITE_COLUMNS)), None)

        return self.blocks.get_or_load((v.manifest.dataset, v.key, contig_index, bin_index),
                                       load)  # type: ignore[arg-type]

    @staticmethod
    def _counts_key(v: _Version, ci: int, bi: int, grouping: Grouping | None) -> tuple[Any, ...]:
        return (v.manifest.dataset, v.key, "counts", ci, bi,
                grouping.column if grouping else None, grouping.names if grouping else ())

    def _partition_counts(self, v: _Version, ci: int, bi: int,
                          grouping: Grouping | None) -> _Counted | None:
        """Counts of a whole partition for one grouping (cached: 32 bytes per variant and
        cell, far less than the genotypes they come from)."""
        key = self._counts_key(v, ci, bi, grouping)

        def load() -> _Counted | None:
            block = self._block(v, ci, bi)
            if block is None or block.packed is None:
                return None
            codes = grouping.codes if grouping else np.full(v.cohort.n_samples, -1, np.int32)
            n_groups = len(grouping.names) if grouping else 0
            counts = count_genotypes(block.packed, block.n_samples, codes, n_groups)
            sites = block.sites
            strings = {k: sites.column(k).combine_chunks().cast(pa.string())
                       for k in ("ref", "alt", "id")}
            return _Counted(block.contig, sites.column("pos").to_numpy(),
                            strings["ref"].to_pylist(), strings["alt"].to_pylist(),
                            strings["id"].to_pylist(), counts.overall, counts.groups, strings)

        return self.counts_cache.get_or_load(key, load)  # type: ignore[arg-type]

    def _counts(self, v: _Version, selection: Selection, grouping: Grouping | None,
                tally: FilterTally | None = None) -> Iterator[_Counted]:
        sf = selection.site_filter
        tally = tally if tally is not None else selection.tally
        if sf is not None:
            sf.check_columns([fmt.info_id_of(c) or c for c in v.reader.info_columns()])
        work = [(region, ci, bi) for region in selection.regions()
                for ci, bi in v.reader.partitions(region)]
        for region, ci, bi, c in self._loaded(v, work, grouping):
            if c is None:
                continue
            lo, hi = 0, c.pos.size
            if region is not None:
                lo = int(np.searchsorted(c.pos, region.start, "left"))
                hi = c.pos.size if region.end is None else int(
                    np.searchsorted(c.pos, region.end, "right"))
            if hi <= lo:
                continue
            if sf is not None:
                keep = np.flatnonzero(self._site_mask(v, ci, bi, sf, c)[lo:hi]) + lo
                if tally is not None:
                    tally.considered += hi - lo
                    tally.kept += int(keep.size)
                if keep.size == 0:
                    continue
                if keep.size < hi - lo:
                    yield c.taken(keep)
                    continue
            yield c if lo == 0 and hi == c.pos.size else c.sliced(lo, hi)

    def _loaded(self, v: _Version, work: list[tuple[Region | None, int, int]],
                grouping: Grouping | None
                ) -> Iterator[tuple[Region | None, int, int, _Counted | None]]:
        """The counts of each partition of ``work``, in order. With more than one partition,
        the next PREFETCH partitions are decrypted and counted on worker threads while the
        caller protects the current one (Parquet decoding and the counting kernels release
        the GIL; decryption is one thread at a time per keyring, see Keyring.io_lock). A
        caller that stops early (a full page) leaves nothing running: queued loads are
        cancelled, running ones finish into the cache."""
        if self.executor is not None and self.executor.wants(len(work)):
            yield from self._loaded_on_cluster(v, work, grouping)
            return
        if len(work) < 2 or PREFETCH < 1:
            for region, ci, bi in work:
                yield region, ci, bi, self._partition_counts(v, ci, bi, grouping)
            return
        pool = ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="genovault-query")
        try:
            futures = [pool.submit(self._partition_counts, v, ci, bi, grouping)
                       for _, ci, bi in work[:PREFETCH + 1]]
            for i, (region, ci, bi) in enumerate(work):
                nxt = i + PREFETCH + 1
                if nxt < len(work):
                    _, cj, bj = work[nxt]
                    futures.append(pool.submit(self._partition_counts, v, cj, bj, grouping))
                yield region, ci, bi, futures[i].result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _loaded_on_cluster(self, v: _Version, work: list[tuple[Region | None, int, int]],
                           grouping: Grouping | None
                           ) -> Iterator[tuple[Region | None, int, int, _Counted | None]]:
        """:meth:`_loaded` with the partitions not in the counts cache counted on the Dask
        cluster (one task each; only counts come back) and cached like local ones."""
        keys = [self._counts_key(v, ci, bi, grouping) for _, ci, bi in work]
        have = {k: c for k in keys if (c := self.counts_cache.get(k)) is not None}
        todo = list(dict.fromkeys((ci, bi) for (_, ci, bi), k in zip(work, keys, strict=True)
                                  if k not in have))
        remote = self.executor.counts(
            str(self.store.root), v.manifest.dataset, v.key, todo,
            grouping.column if grouping else None, grouping.names if grouping else ())
        try:
            for (region, ci, bi), key in zip(work, keys, strict=True):
                if key not in have:
                    got = next(remote)
                    c = None if got is None else _Counted(
                        got.contig, got.pos, got.ref.to_pylist(), got.alt.to_pylist(),
                        got.ids.to_pylist(), got.overall, got.groups,
                        {"ref": got.ref, "alt": got.alt, "id": got.ids})
                    if c is not None:
                        have[key] = self.counts_cache.get_or_load(key, _const(c))
                yield region, ci, bi, have.get(key)
        finally:
            remote.close()  # an early stop cancels the rest and drops the credentials

    def _site_mask(self, v: _Version, ci: int, bi: int, sf: SiteFilter,
                   c: _Counted) -> np.ndarray:
        """Which variants of partition (ci, bi) satisfy ``sf``, row for row with ``c``: the
        filter reads that partition's site columns only (never its genotypes)."""
        key = (v.manifest.dataset, v.key, "site_filter", ci, bi, sf.canonical)

        def load() -> np.ndarray:
            size = v.manifest.partition.bin_size
            region = Region(v.manifest.contigs[ci], max(1, bi * size), (bi + 1) * size - 1)
            info = {fmt.info_id_of(n): n for n in v.reader.info_columns()}
            cols = [f if f in FIXED_COLUMNS else info[f] for f in sf.fields]
            read = list(dict.fromkeys(["pos", "ref", "alt", *cols]))
            block = next(iter(v.reader.blocks(region, site_columns=read, genotypes=False)),
                         None)
            if block is None:
                if c.pos.size:
                    raise IntegrityError("a partition's site columns are missing")
                return np.zeros(0, np.bool_)
            sites = block.sites
            if sites.num_rows != c.pos.size or not (
                    np.array_equal(sites.column("pos").to_numpy(), c.pos)
                    and sites.column("ref").to_pylist() == c.ref
                    and sites.column("alt").to_pylist() == c.alt):
                raise IntegrityError("the site columns of a partition do not line up with "
                                     "its genotypes; the dataset changed while it was read")
            return sf.select(sites_view(sites.select(list(dict.fromkeys(cols)))))

        return self.site_masks.get_or_load(key, load)
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
    def _rows(stat: Statistic, piece: _Piece, grouping: Grouping | None
              ) -> list[dict[str, Any]]:
        """The answer rows of one piece: protected, with their statistic."""
        c, take, prot = piece.counted, piece.take, piece.prot
        po, pg = prot.overall.tolist(), prot.groups.tolist()
        overall_cells = _cells(stat, stat.values(c.overall[take]), po)
        names = grouping.names if grouping else ()
        group_cells = [_cells(stat, stat.values(c.groups[take, g]), [r[g] for r in pg])
                       for g in range(len(names))]
        pos = c.pos[take].tolist()
        rows = []
        for r, i in enumerate(take.tolist()):
            vid = c.ids[i]
            suppressed: list[dict[str, Any]] = []
            if po[r] != NONE:
                suppressed.append({"cell": "overall", "reason": REASON_NAMES[po[r]]})
            row: dict[str, Any] = {"chrom": c.contig, "pos": pos[r], "ref": c.ref[i],
                                   "alt": c.alt[i], "id": None if vid in (None, ".") else vid,
                                   "overall": overall_cells[r]}
            if grouping is not None:
                row["groups"] = {name: group_cells[g][r] for g, name in enumerate(names)}
                for g, name in enumerate(names):
                    if pg[r][g] != NONE:
                        suppressed.append({"cell": f"groups.{name}",
                                           "reason": REASON_NAMES[pg[r][g]]})
            row["suppressed"] = suppressed
            rows.append(row)
        return rows

    @staticmethod
    def _table(stat: Statistic, pieces: list[_Piece], grouping: Grouping | None) -> pa.Table:
        """The rows of ``pieces`` as one Arrow table (see :meth:`statistic_table`)."""
        contigs = sorted({p.counted.contig for p in pieces})
        where = {c: i for i, c in enumerate(contigs)}
        chrom_idx = np.concatenate([np.full(p.take.size, where[p.counted.contig], np.int32)
                                    for p in pieces]) if pieces else np.zeros(0, np.int32)
        cols: dict[str, pa.Array] = {
            "chrom": pa.DictionaryArray.from_arrays(pa.array(chrom_idx),
                                                    pa.array(contigs, pa.string())),
            "pos": pa.array(_cat([p.counted.pos[p.take] for p in pieces], np.int64)),
        }
        for name in ("ref", "alt", "id"):
            parts = [p.counted.column(name, p.take) for p in pieces]
            cols[name] = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
        n_groups = len(grouping.names) if grouping else 0
        overall = _cat([p.counted.overall[p.take] for p in pieces], np.int64, (0, 4))
        reason_o = _cat([p.prot.overall for p in pieces], np.int8)
        cols.update(_cell_columns(stat, "overall", overall, reason_o))
        if grouping:
            groups = _cat([p.counted.groups[p.take] for p in pieces], np.int64,
                          (0, n_groups, 4))
            reason_g = _cat([p.prot.groups for p in pieces], np.int8, (0, n_groups))
            for g, gname in enumerate(grouping.names):
                cols.update(_cell_columns(stat, f"groups.{gname}", groups[:, g],
                                          reason_g[:, g]))
        return pa.table(cols)

def _const(value: _Counted) -> Callable[[], _Counted]:
    return lambda: value


def version_key_of(manifest: Manifest) -> str:
    """The key of a dataset version: the manifest's commit counter (a withdrawal or rotation
    is seen at the next request)."""
    return f"{manifest.uid}:{manifest.version}:{manifest.updated_at}:{len(manifest.batches)}"


def release_key_of(manifest: Manifest) -> str:
    """What the registered tier's ledger keeps a principal's noisy cells and presence member
    budgets under: the dataset's content — the manifest without its commit counter, time
    and signature — not its commit (:func:`version_key_of`). A key rotation (or a re-signing)
    commits a new manifest over the very same data; keyed by the commit, it gave every
    principal fresh noise on every cell and fresh member budgets (a presence answer drawn
    again, for free, per rotation). A new batch, a withdrawal, a consent or a compaction
    changes the content, and so the key."""
    body = manifest.model_dump(mode="json", exclude={"version", "updated_at", "signature"})
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode("utf-8")).hexdigest()
    return f"{manifest.uid}:{digest[:32]}"


def _rules(kind: str) -> list[str]:
    what = "AC and REF allele counts" if kind == "alleles" else \
        "genotype counts (hom-ref, het, hom-alt) and allele counts"
    return [f"cells whose {what} include a count of 1..k-1 are null with everything derived "
            "from them; 0 is shown as 0",
            "complementary suppression: no suppressed cell can be recovered as the overall "
            "count minus the other groups",
            "variants whose overall AC or REF count is 1..k-1 are not listed, and how many is "
            "not said (it would say one exists; the audit record keeps the count)",
            "groups smaller than min_group_size are refused (their samples stay in overall)",
            "in released cells, missing-call and called counts (and AN) are released as "
            "measured: they describe measurement, not genotypes"]


def _round10(n: int) -> int:
    return int(round(n / 10.0) * 10)



_REASONS = pa.array(["released", *(REASON_NAMES[r] for r in sorted(REASON_NAMES))], pa.string())
_STATUS = pa.array(list(STATUS_NAMES) + ["suppressed"], pa.string())


def _cat(parts: list[np.ndarray], dtype: Any, empty: tuple[int, ...] = (0,)) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(empty, dtype)


def _cells(stat: Statistic, values: dict[str, list[Any]],
           reasons: list[int]) -> list[dict[str, Any]]:
    """One JSON cell per row (``values`` of :meth:`Statistic.values` over rows): a
    suppressed cell keeps ``n`` only, its other fields null (status ``suppressed``)."""
    keys = ["n", *stat.fields] + (["status"] if stat.has_status else [])
    hidden = dict.fromkeys(stat.fields)
    if stat.has_status:
        hidden["status"] = "suppressed"
    out = [dict(zip(keys, vals, strict=True))
           for vals in zip(*(values[k] for k in keys), strict=True)]
    for r, why in enumerate(reasons):
        if why != NONE:
            out[r] = {"n": out[r]["n"], **hidden}
    return out


def _cell_columns(stat: Statistic, prefix: str, counts: np.ndarray,
                  reasons: np.ndarray) -> dict[str, pa.Array]:
    """The columns of one cell per row: a suppressed cell keeps ``n`` only."""
    values = stat.arrays(counts)
    hidden = reasons != NONE
    out: dict[str, pa.Array] = {f"{prefix}.n": pa.array(values["n"])}
    for name in stat.fields:
        arr = values[name]
        mask = hidden | np.isnan(arr) if arr.dtype.kind == "f" else hidden
        out[f"{prefix}.{name}"] = pa.array(arr, mask=mask)
    if stat.has_status:
        codes = np.where(hidden, len(STATUS_NAMES), values["status"]).astype(np.int32)
        out[f"{prefix}.status"] = pa.DictionaryArray.from_arrays(pa.array(codes), _STATUS)
    out[f"{prefix}.suppressed"] = pa.DictionaryArray.from_arrays(
        pa.array(reasons.astype(np.int32), mask=~hidden), _REASONS)
    return out
