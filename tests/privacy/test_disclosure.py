"""Small-cell and complementary suppression (vault.privacy.disclosure), pure numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.privacy.disclosure import COMPLEMENTARY, NONE, RARE, SMALL, protect, small_cells


def cell(hom_ref: int, het: int, hom_alt: int, missing: int = 0) -> list[int]:
    return [hom_ref, het, hom_alt, missing]


@pytest.mark.parametrize(("counts", "kind", "small"), [
    pytest.param(cell(100, 0, 0), "alleles", False, id="monomorphic-ref"),
    pytest.param(cell(0, 0, 100), "alleles", False, id="fixed-alt"),
    pytest.param(cell(95, 5, 0), "alleles", True, id="ac-5"),
    pytest.param(cell(90, 11, 0), "alleles", False, id="ac-11"),
    pytest.param(cell(89, 10, 1), "alleles", False, id="ac-12-hom-alt-1-alleles-ok"),
    pytest.param(cell(89, 10, 1), "genotypes", True, id="hom-alt-1-genotypes-small"),
    pytest.param(cell(0, 5, 95), "alleles", True, id="ref-count-5"),
    pytest.param(cell(98, 0, 0, 2), "alleles", False, id="missing-only-is-released"),
    pytest.param(cell(3, 0, 0, 97), "genotypes", True, id="three-hom-ref"),
    pytest.param(cell(3, 0, 0, 97), "calls", False, id="calls-kind-never-small"),
])
def test_small_cells__gallery(counts: list[int], kind: str, small: bool) -> None:
    assert bool(small_cells(np.array(counts), 11, kind)) is small


def test_protect__lone_small_group_gets_a_complementary_partner() -> None:
    groups = np.array([[cell(45, 5, 0), cell(35, 15, 0), cell(30, 20, 0)]])
    overall = groups.sum(axis=1)
    p = protect(overall, groups, np.array([50, 50, 40]), 11, "alleles")
    # group 0 is small; the smallest other group (size 40) is suppressed with it, because
    # overall − the two others would give group 0's count back
    assert p.groups[0].tolist() == [SMALL, NONE, COMPLEMENTARY]
    assert p.overall[0] == NONE


def test_protect__small_hidden_part_forces_suppression() -> None:
    # 3 unlabelled samples carry the allele: overall − Σ groups = their count
    groups = np.array([[cell(60, 20, 0), cell(60, 20, 0)]])
    overall = groups.sum(axis=1) + np.array([cell(0, 3, 0)])
    p = protect(overall, groups, np.array([80, 80]), 11, "alleles")
    assert (p.groups[0] != NONE).sum() >= 1


def test_protect__rare_variant_rule_suppresses_everywhere() -> None:
    groups = np.array([[cell(40, 20, 0), cell(40, 20, 0)]])
    overall = groups.sum(axis=1)
    p = protect(overall, groups, np.array([60, 60]), 11, "alleles", rare_max_ac=50)
    assert p.overall[0] == RARE and (p.groups[0] == RARE).all()


@st.composite
def cohorts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, str]:
    n_var = draw(st.integers(1, 6))
    n_groups = draw(st.integers(1, 5))
    k = draw(st.integers(2, 15))
    kind = draw(st.sampled_from(["alleles", "genotypes"]))
    sizes = np.array([draw(st.integers(0, 60)) for _ in range(n_groups)])
    hidden_n = draw(st.integers(0, 30))
    groups = np.zeros((n_var, n_groups, 4), np.int64)
    hidden = np.zeros((n_var, 4), np.int64)
    for v in range(n_var):
        for g in range(n_groups):
            groups[v, g] = _split(draw, int(sizes[g]))
        hidden[v] = _split(draw, hidden_n)
    overall = groups.sum(axis=1) + hidden
    return overall, groups, sizes, k, kind


def _split(draw: st.DrawFn, n: int) -> list[int]:
    a = draw(st.integers(0, n))
    b = draw(st.integers(0, n - a))
    c = draw(st.integers(0, n - a - b))
    return [n - a - b - c, a, b, c]


@settings(max_examples=300, deadline=None)
@given(cohorts())
def test_protect__no_suppressed_cell_is_recoverable_from_total_and_others(
        data: tuple[np.ndarray, np.ndarray, np.ndarray, int, str]) -> None:
    overall, groups, sizes, k, kind = data
    p = protect(overall, groups, sizes, k, kind)
    hidden = overall - groups.sum(axis=1)
    for v in range(overall.shape[0]):
        released_o = p.overall[v] == NONE
        # 1. nothing released has a small count
        if released_o:
            assert not small_cells(overall[v], k, kind)
        for g in range(groups.shape[1]):
            if p.groups[v, g] == NONE:
                assert not small_cells(groups[v, g], k, kind)
        if not released_o:
            continue
        # 2. overall = Σ groups + hidden: a sensitive unknown never stands alone
        suppressed = [g for g in range(groups.shape[1]) if p.groups[v, g] != NONE]
        n_hidden = int(hidden[v].sum())
        hidden_small = (0 < n_hidden < k) or bool(small_cells(hidden[v], k, kind))
        unknowns = len(suppressed) + int(hidden_small or n_hidden >= k)
        if suppressed or hidden_small:
            assert unknowns >= 2, (v, suppressed, n_hidden)


def test_protect__the_allele_answers_complementary_cell_is_hidden_in_genotype_answers_too(
        ) -> None:
    """The case a review found over HTTP (frequency and genotype-counts of the same region
    and grouping, joined in one SQL query): the allele answer hides group 0 (AC 4) and, as
    its complementary cell, group 1, the smallest other group; the genotype answer hides
    group 0 and group 2 (hom-alt 3) as small cells, so on its own it needs no complementary
    cell. If it released group 1, group 1's AC (het + 2 hom-alt) plus group 2's AC from the
    allele answer would give group 0's AC as overall − the others."""
    groups = np.array([[cell(16, 4, 0), cell(20, 15, 0), cell(10, 30, 3)]])
    overall = groups.sum(axis=1)
    sizes = np.array([20, 35, 43])
    a = protect(overall, groups, sizes, 11, "alleles")
    assert a.groups[0].tolist() == [SMALL, COMPLEMENTARY, NONE]
    g = protect(overall, groups, sizes, 11, "genotypes")
    assert g.groups[0, 1] != NONE  # group 1's AC stays unknown
    assert g.groups[0].tolist() == [SMALL, COMPLEMENTARY, SMALL]


@settings(max_examples=300, deadline=None)
@given(cohorts())
def test_protect__no_suppressed_ac_is_recoverable_from_allele_and_genotype_answers_together(
        data: tuple[np.ndarray, np.ndarray, np.ndarray, int, str]) -> None:
    """A caller who has both answers for the same variants and groups knows a cell's AC when
    either releases the cell. Every variant with an AC-sensitive unknown (a cell small for
    the allele answer, or a small hidden part) still has at least two unknowns."""
    overall, groups, sizes, k, _ = data
    a = protect(overall, groups, sizes, k, "alleles")
    g = protect(overall, groups, sizes, k, "genotypes")
    hidden = overall - groups.sum(axis=1)
    for v in range(overall.shape[0]):
        if a.overall[v] != NONE and g.overall[v] != NONE:
            continue  # the overall AC is unknown: there is no total to subtract from
        unknown = [i for i in range(groups.shape[1])
                   if a.groups[v, i] != NONE and g.groups[v, i] != NONE]
        # every cell hidden by the allele answer stays hidden in the genotype answer
        assert set(np.flatnonzero(a.groups[v] != NONE)) <= set(unknown)
        n_hidden = int(hidden[v].sum())
        hidden_small = (0 < n_hidden < k) or bool(small_cells(hidden[v], k, "alleles"))
        sensitive = any(small_cells(groups[v, i], k, "alleles") for i in unknown)
        if sensitive or hidden_small:
            assert len(unknown) + int(hidden_small or n_hidden >= k) >= 2, (v, unknown)
