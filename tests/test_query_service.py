"""The query service without HTTP: small groups are refused and never named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest

from vault.query.service import Disclosure, QueryService, Selection
from vault.store.dataset import Store

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[1] / "vault" / "sample_data"


@pytest.fixture
def rare_group(tmp_path: Path, ingest_file: Callable, store: Store,
               query_client: hvac.Client) -> QueryService:
    lines = (DEMO / "demo_cohort_samples.tsv").read_text().splitlines()
    head, rows = lines[0], lines[1:]
    cols = head.split("\t")
    pi = cols.index("population")
    for i in range(3):  # three people with a rare label
        parts = rows[i].split("\t")
        parts[pi] = "RARE_DIAGNOSIS_X"
        rows[i] = "\t".join(parts)
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("\n".join([head, *rows]) + "\n")
    ingest_file(DEMO / "demo_cohort.vcf.gz", "rare", sample_sheet=sheet)
    return QueryService(store, lambda: query_client)


def test_query_service__small_group_is_refused_and_never_named(rare_group: QueryService) -> None:
    d = Disclosure(k=11, min_group_size=20)
    desc = rare_group.describe("rare", d, None)
    text = json.dumps(desc)
    assert "RARE_DIAGNOSIS_X" not in text
    assert desc["groups_below_minimum"]["population"] == 1
    ans = rare_group.statistic("rare", "frequency", Selection(), "population", d, limit=2000)
    text = json.dumps(ans)
    assert "RARE_DIAGNOSIS_X" not in text
    assert ans["disclosure"]["refused_groups"] == 1
    # the three hidden samples are too few to hide behind: every variant whose overall cell
    # is released, and that any of them carries, has a second unknown
    for v in ans["variants"]:
        if v["overall"]["ac"] is not None:
            shown = [c for c in v["groups"].values() if c["ac"] is not None]
            total = sum(c["ac"] for c in shown)
            if len(shown) == len(v["groups"]) and total != v["overall"]["ac"]:
                pytest.fail(f"{v['pos']}: overall − groups isolates the hidden samples")


def test_query_service__association_does_not_say_a_small_group_exists(
        rare_group: QueryService) -> None:
    """describe() never names a group under the minimum size; association must not confirm a
    guessed name either. It answered "has no group" for an absent name and "have fewer than
    20 samples" for a small one: an oracle for a rare diagnosis among the samples."""
    from vault.errors import ConfigError
    from vault.query import advanced

    d = Disclosure(k=11, min_group_size=20)
    said = []
    for guess in ("RARE_DIAGNOSIS_X", "NO_SUCH_DIAGNOSIS"):
        with pytest.raises(ConfigError) as exc:
            advanced.association(rare_group, "rare", Selection(), "population", guess, "pop1",
                                 d)
        said.append(str(exc.value).replace(guess, "<guess>"))
    assert said[0] == said[1]


def test_query_service__registered_association_does_not_charge_rare_variants(
        rare_group: QueryService, tmp_path: Path) -> None:
    """On the registered tier association noised (and charged) every variant of the
    partitions it read, rare ones included, so its cost over a region of one position said
    whether a rare variant is stored there. A variant rare by its exact counts is never
    listed, so it is now neither noised nor charged: a one-position region over a rare SNV
    costs what one over an empty position costs (nothing)."""
    from tests.support.demo import rare_snvs, unstored_positions
    from vault.privacy.dp import DPSession
    from vault.privacy.ledger import Ledger
    from vault.query import advanced
    from vault.store.reader import Region

    ledger = Ledger(tmp_path / "ledger.db")
    costs = []
    positions = [p for _, p, _, _ in rare_snvs(700_000, 10)] + unstored_positions(
        "20", 700_001, 2)
    for pos in positions:
        session = DPSession(ledger, "researcher", 0.25, 1e6, 30)
        d = Disclosure(k=11, min_group_size=20, tier="registered", noise=session)
        ans = advanced.association(rare_group, "rare", Selection(region=Region("20", pos, pos)),
                                   "phenotype", "case", "control", d)
        if ans["variants"]:  # another, listable allele at the same position
            continue
        costs.append(session.new_cells)
    assert len(costs) >= 8 and set(costs) == {0}, costs
    # a listable variant is still charged: a wide region costs its listed variants at least
    session = DPSession(ledger, "researcher-2", 0.25, 1e6, 30)
    d = Disclosure(k=11, min_group_size=20, tier="registered", noise=session)
    ans = advanced.association(rare_group, "rare", Selection(region=Region("20", 1, 300_000)),
                               "phenotype", "case", "control", d, limit=1000)
    assert ans["count"] > 10 and session.new_cells >= ans["count"]


def test_beacon_charge__a_range_pays_every_listable_variant_before_its_allele_filter(
        rare_group: QueryService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered-tier Beacon range with alleles pays the range's listable variants before
    the allele filter picks among them. It did so through one page of MAX_PAGE (5,000)
    variants: beyond them the filter decided what was charged, so the cost could say that an
    allele a noisy 0 hides is stored there. (Shown here with a page of 3.) Every listable
    variant is now charged, however many."""
    from dataclasses import replace

    from vault.api.routes import beacon
    from vault.beacon.request import VariantQuery
    from vault.privacy.dp import DPSession
    from vault.privacy.ledger import Ledger

    monkeypatch.setattr(beacon, "MAX_PAGE", 3, raising=False)
    ledger = Ledger(tmp_path / "ledger.db")
    v = VariantQuery(reference_name="20", start=(100_000,), end=(200_000,),
                     alternate_bases="T")
    first = DPSession(ledger, "researcher", 0.25, 1e6, 30)
    beacon._charge_position(rare_group, "rare", v, "20",
                            Disclosure(k=11, tier="registered", noise=first))
    # the whole range answered afterwards, without the allele filter, costs nothing more
    then = DPSession(ledger, "researcher", 0.25, 1e6, 30)
    where = beacon._selection(replace(v, alternate_bases=None), "20")  # overlap filter too
    ans = rare_group.statistic("rare", "frequency", where, None,
                               Disclosure(k=11, tier="registered", noise=then), limit=5000)
    assert ans["count"] > 20 and not ans["truncated"]
    assert first.new_cells >= ans["count"] and then.new_cells == 0
