"""Beacon's 0-based, half-open coordinates against the store's 1-based VCF positions, checked
at the edges against an oracle written in Beacon's own terms (interbase intervals), through
the real site-filter engine that the query service runs."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest

from vault.beacon.request import (
    LOOKBACK,
    BeaconError,
    VariantQuery,
    parse_query,
    resolve_contig,
)
from vault.query import sitefilter

# (VCF POS, REF, ALT): SNVs, an MNP, deletions and insertions, a symbolic and a '*' allele
SITES = [(100, "A", "G"), (101, "C", "T"), (101, "C", "A"), (105, "AT", "A"),
         (110, "G", "GTT"), (120, "ACG", "TCA"), (99, "ACGTACGTAC", "A"), (130, "T", "<DEL>"),
         (131, "C", "*"), (140, "ANT", "A"), (150, "C", "N")]


def _table() -> pa.Table:
    pos, ref, alt = zip(*SITES, strict=True)
    n = len(SITES)
    return pa.table({"chrom": ["20"] * n, "pos": pa.array(pos, pa.int64()), "id": ["."] * n,
                     "ref": list(ref), "alt": list(alt), "qual": pa.nulls(n, pa.float64()),
                     "filter": ["PASS"] * n})


def _found(q: VariantQuery) -> set[tuple[int, str, str]]:
    """What the service would select: the region's positions, then the site filter."""
    region = q.region("20")
    mask = sitefilter.parse(q.filter_text()).select(_table())
    return {s for s, keep in zip(SITES, mask.tolist(), strict=True) if keep and (
        region is None or (region.start <= s[0] and (region.end is None
                                                     or s[0] <= region.end)))}


def _span(site: tuple[int, str, str]) -> tuple[int, int]:
    """The variant's 0-based half-open interval on the reference."""
    return site[0] - 1, site[0] - 1 + len(site[1])


def _sequence_allele(site: tuple[int, str, str]) -> bool:
    return set(site[2]) <= set("ACGTN") and site[2] not in ("*", ".")


def test_coordinates__sequence_query_is_pos_minus_one() -> None:
    # the VCF record 20:100 A>G is start=99 in Beacon's coordinates
    assert _found(VariantQuery("20", (99,), (), "A", "G")) == {(100, "A", "G")}
    assert _found(VariantQuery("20", (100,), (), "A", "G")) == set()
    assert _found(VariantQuery("20", (98,), (), "A", "G")) == set()
    assert VariantQuery("20", (99,), (), "A", "G").exact_allele() == (100, "A", "G")
    # alternateBases alone: every ALT at that position; N is one base of any kind
    assert _found(VariantQuery("20", (100,), (), None, "T")) == {(101, "C", "T")}
    assert _found(VariantQuery("20", (100,), (), None, "N")) == {(101, "C", "T"),
                                                                   (101, "C", "A")}
    assert _found(VariantQuery("20", (104,), (), "AT", "A")) == {(105, "AT", "A")}
    assert _found(VariantQuery("20", (139,), (), "ANT", "A")) == {(140, "ANT", "A")}
    assert VariantQuery("20", (139,), (), "ANT", "A").exact_allele() is None


@pytest.mark.parametrize("start,end", [(s, e) for s, e in itertools.product(
    (0, 98, 99, 100, 104, 105, 109, 110, 122, 123), repeat=2) if e > s])
def test_coordinates__range_query_is_any_overlap_of_start_end(start: int, end: int) -> None:
    want = {s for s in SITES if _sequence_allele(s)
            and _span(s)[0] < end and _span(s)[1] > start}
    assert _found(VariantQuery("20", (start,), (end,))) == want


def test_coordinates__range_query_finds_a_deletion_starting_before_the_range() -> None:
    # 20:99 ACGTACGTAC>A spans [98, 108): it overlaps [107, 108) but not [108, 200)
    assert (99, "ACGTACGTAC", "A") in _found(VariantQuery("20", (107,), (108,)))
    assert (99, "ACGTACGTAC", "A") not in _found(VariantQuery("20", (108,), (200,)))
    assert VariantQuery("20", (5000,), (5001,)).region("20").start == 5001 - LOOKBACK


@pytest.mark.parametrize("s0,s1,e0,e1", [
    (99, 100, 100, 101),   # precise: starts at 99, ends at 100 (20:100 A>G)
    (98, 100, 100, 102), (100, 101, 101, 102), (104, 105, 106, 107), (104, 105, 107, 108),
    (109, 110, 110, 111), (119, 120, 122, 123), (119, 120, 123, 124), (0, 200, 0, 200),
    (98, 99, 108, 109), (99, 101, 100, 102),
])
def test_coordinates__bracket_query_is_half_open_on_both_ends(s0: int, s1: int, e0: int,
                                                               e1: int) -> None:
    want = {s for s in SITES if _sequence_allele(s)
            and s0 <= _span(s)[0] < s1 and e0 <= _span(s)[1] < e1}
    got = _found(VariantQuery("20", (s0, s1), (e0, e1)))
    assert got == want
    if (s0, s1, e0, e1) == (99, 100, 100, 101):
        assert got == {(100, "A", "G")}


@pytest.mark.parametrize("vtype,want", [
    ("SNP", {(100, "A", "G"), (101, "C", "T"), (101, "C", "A"), (150, "C", "N")}),
    ("MNP", {(120, "ACG", "TCA")}),
    ("DEL", {(105, "AT", "A"), (99, "ACGTACGTAC", "A"), (140, "ANT", "A")}),
    ("INS", {(110, "G", "GTT")}),
    ("INDEL", {(105, "AT", "A"), (99, "ACGTACGTAC", "A"), (140, "ANT", "A"),
               (110, "G", "GTT")}),
])
def test_coordinates__variant_type(vtype: str, want: set) -> None:
    assert _found(VariantQuery("20", (0,), (1000,), variant_type=vtype)) == want


def test_coordinates__symbolic_and_star_alleles_are_never_answered() -> None:
    got = _found(VariantQuery("20"))
    assert (130, "T", "<DEL>") not in got and (131, "C", "*") not in got
    assert len(got) == len(SITES) - 2


def test_coordinates__get_parameters() -> None:
    q = parse_query({"referenceName": "20", "start": "98,100", "end": "100,102",
                     "requestedGranularity": "count", "skip": "2", "limit": "5"})
    assert q.variant.kind == "bracket" and q.variant.start == (98, 100)
    assert q.granularity == "count" and q.offset == 10
    assert parse_query({"limit": "0"}).limit == 1000
    with pytest.raises(BeaconError, match="start"):
        parse_query({"referenceName": "20", "start": "x"})
    with pytest.raises(BeaconError, match="not supported"):
        parse_query({"referenceName": "20", "start": "1", "end": "5", "geneId": "BRCA1"})
    with pytest.raises(BeaconError, match="referenceName"):
        parse_query({"start": "1", "end": "5"})
    with pytest.raises(BeaconError, match="between"):
        parse_query({"referenceName": "20", "start": "-1", "end": "5"})


@pytest.mark.parametrize("name,contigs,want", [
    ("20", ["20"], "20"), ("chr20", ["20"], "20"), ("20", ["chr20"], "chr20"),
    ("NC_000020.11", ["20"], "20"), ("refseq:NC_000023.11", ["chrX"], "chrX"),
    ("NC_012920.1", ["MT"], "MT"), ("1", ["10", "19"], None), ("chr2", ["20"], None),
])
def test_coordinates__reference_names(name: str, contigs: list[str], want: str | None) -> None:
    assert resolve_contig(name, contigs) == want
