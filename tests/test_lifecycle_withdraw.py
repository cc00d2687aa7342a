"""Part C of the lifecycle: participant withdrawal. A withdrawn sample is gone from every
aggregate, exactly as if never ingested; re-ingesting it is refused until renewed consent."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pyarrow.parquet as pq
import pytest

from tests.support.baodev import DevServer
from tests.support.vcfgen import header, random_records, write_vcf
from vault.errors import ConfigError, GenoVaultError, SampleSheetError, VaultForbidden
from vault.ingest.pipeline import IngestResult
from vault.keys import lifecycle, signing
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import Keyring
from vault.query.service import Disclosure, QueryService, Selection
from vault.query.stats import STATISTICS
from vault.report.build import build_report
from vault.store.dataset import Store

pytestmark = pytest.mark.integration

N_PER_BATCH = 30
WITHDRAW = ["P0_3", "P0_17", "P1_5"]
POPS = ["AFR", "EUR", "EAS"]


def _batch(tmp_path: Path, b: int, drop: set[str], seed: int) -> tuple[Path, Path]:
    ids = [f"P{b}_{j}" for j in range(N_PER_BATCH)]
    lines, _codes = random_records(N_PER_BATCH, 250, seed=seed, chrom="1", step=30_000)
    keep = [j for j, s in enumerate(ids) if s not in drop]
    out = []
    for line in lines:
        f = line.split("\t")
        out.append("\t".join(f[:9] + [f[9 + j] for j in keep]))
    tag = "full" if not drop else "without"
    vcf = write_vcf(tmp_path / f"{tag}{b}.vcf", header([ids[j] for j in keep]) + out)
    sheet = tmp_path / f"{tag}{b}.tsv"
    sheet.write_text("sample\tpop\n" + "".join(f"{ids[j]}\t{POPS[j % 3]}\n" for j in keep))
    return vcf, sheet


def _all_answers(svc: QueryService, ds: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for disc in (Disclosure(k=1, min_group_size=1), Disclosure()):
        d = svc.describe(ds, disc, None)
        d.pop("dataset_version")
        out[f"describe-{disc.k}"] = d
        out[f"sizes-{disc.k}"] = svc.group_sizes(ds, "pop")
        for name in STATISTICS:
            for group_by in (None, "pop"):
                a = svc.statistic(ds, name, Selection(), group_by, disc, limit=5000)
                a.pop("dataset_version")
                out[f"{name}-{group_by}-{disc.k}"] = a
    return out


@pytest.fixture
def cohorts(tmp_path: Path, ingest_file: Callable[..., IngestResult]) -> tuple[str, str]:
    """(full dataset, the same cohort ingested without the WITHDRAW samples)."""
    full, fresh = f"wd-{uuid.uuid4().hex[:8]}", f"wf-{uuid.uuid4().hex[:8]}"
    for b in (0, 1):
        vcf, sheet = _batch(tmp_path, b, set(), seed=10 + b)
        ingest_file(vcf, full, sample_sheet=sheet, bin_size=2_000_000)
        vcf, sheet = _batch(tmp_path, b, set(WITHDRAW), seed=10 + b)
        ingest_file(vcf, fresh, sample_sheet=sheet, bin_size=2_000_000)
    return full, fresh


def test_withdrawn__every_statistic_equals_a_fresh_ingest_without_them(
        store: Store, cohorts: tuple[str, str], role_client, query_client: hvac.Client) -> None:
    full, fresh = cohorts
    svc = QueryService(store, lambda: query_client)
    before = _all_answers(svc, full)
    expected = _all_answers(svc, fresh)
    assert before != expected
    events: list[dict] = []
    admin = role_client("admin")
    rep = lifecycle.withdraw(store, full, admin, WITHDRAW, reason="participant request",
                             audit=events.append)
    # the very next query already leaves them out (how fast: benchmarks/lifecycle.py)
    answer = svc.statistic(full, "frequency", Selection(), None, Disclosure())
    assert rep.withdrawn == 3 and answer["variants"] is not None
    assert _all_answers(svc, full) == expected
    # a fresh service (another process) sees the same
    signing.forget()
    assert _all_answers(QueryService(store, lambda: query_client), full) == expected
    # nothing in clear: the manifest holds sha256 of pseudonyms only; the audit no ids
    text = (store.dataset_dir(full) / "manifest.json").read_text()
    assert not any(s in text for s in WITHDRAW)
    assert len(store.manifest(full).withdrawn) == 3
    assert events[0]["command"] == "samples withdraw" and events[0]["withdrawn"] == 3
    assert not any(s in str(events) for s in WITHDRAW)
    # again: nothing new
    assert lifecycle.withdraw(store, full, admin, WITHDRAW[:1]).already == 1


def _report_quality(svc: QueryService, ds: str) -> dict[str, Any]:
    """The report's per-batch and overall sample counts and call rates (k=1: all shown)."""
    q = build_report(svc, ds, Disclosure(k=1, min_group_size=1))["quality"]
    keep = ("samples", "call_rate", "groups")
    return {"batches": [{k: b[k] for k in keep} for b in q["batches"]],
            "overall": {k: q["overall"][k] for k in keep[:2]},
            "samples": q["sample_overall"]}


def test_withdrawn__left_out_of_the_reports_batch_qc_too(
        store: Store, cohorts: tuple[str, str], role_client, query_client: hvac.Client) -> None:
    """The report's per-batch QC (ingest's QC report, stored with the batch) used to count
    the withdrawn samples: their batch's sample count, group sizes and call rates, next to
    the cohort total without them (which said who withdrew from which group)."""
    full, fresh = cohorts
    svc = QueryService(store, lambda: query_client)
    expected = _report_quality(svc, fresh)
    assert _report_quality(svc, full) != expected
    lifecycle.withdraw(store, full, role_client("admin"), WITHDRAW)
    assert _report_quality(svc, full) == expected
    # and the same after compaction (which copies the batch's QC report)
    lifecycle.compact(store, full, query_client, role_client("ingest"))
    signing.forget()
    assert _report_quality(QueryService(store, lambda: query_client), full) == expected
    # the per-call totals of ingest cannot be recounted without them: withheld
    row = build_report(svc, full, Disclosure(k=1, min_group_size=1))["quality"]["batches"][0]
    assert row["half_calls_as_missing"] is None


def test_report__a_batch_under_k_samples_shows_no_per_sample_totals(
        store: Store, cohorts: tuple[str, str], query_client: hvac.Client) -> None:
    """The per-batch rows took the per-sample totals (haploid, half and GT-less calls) from
    the exact QC, not from the suppressed copy: a batch of fewer than k samples showed them
    (for a batch of one they are one person's data), and so did the overall sum."""
    _, fresh = cohorts
    svc = QueryService(store, lambda: query_client)
    quality = build_report(svc, fresh, Disclosure(k=31, min_group_size=31))["quality"]
    for row in quality["batches"]:  # batches of 30 samples, k = 31
        for key in ("haploid_calls_as_homozygous", "half_calls_as_missing",
                    "records_without_gt_as_missing"):
            assert row[key] is None, (key, row)
        assert row["call_rate"] is None
    assert quality["overall"]["call_rate"] is None  # it would give the withheld rates back
    shown = build_report(svc, fresh, Disclosure(k=11, min_group_size=11))["quality"]
    assert all(isinstance(r["half_calls_as_missing"], int) for r in shown["batches"])
    assert shown["overall"]["call_rate"] is not None


def test_withdraw__unknown_id_refused_and_nothing_recorded(store: Store,
                                                           cohorts: tuple[str, str],
                                                           role_client) -> None:
    full, _ = cohorts
    with pytest.raises(ConfigError, match="not in dataset"):
        lifecycle.withdraw(store, full, role_client("admin"), ["P0_1", "NOBODY"])
    assert store.manifest(full).withdrawn == []


def test_withdraw__query_and_ingest_tokens_cannot(store: Store, cohorts: tuple[str, str],
                                                  role_client) -> None:
    full, _ = cohorts
    for role in ("query", "ingest"):
        with pytest.raises(VaultForbidden):
            lifecycle.withdraw(store, full, role_client(role), ["P0_1"])
    assert store.manifest(full).withdrawn == []


def test_reingest_of_withdrawn_sample__refused_until_renewed_consent(
        tmp_path: Path, store: Store, cohorts: tuple[str, str], role_client,
        ingest_file: Callable[..., IngestResult], query_client: hvac.Client) -> None:
    full, _ = cohorts
    admin = role_client("admin")
    lifecycle.withdraw(store, full, admin, ["P0_3"])
    lines, _ = random_records(2, 20, seed=99, chrom="1", step=30_000)
    vcf = write_vcf(tmp_path / "again.vcf", header(["P0_3", "NEW_1"]) + lines)
    with pytest.raises(SampleSheetError, match="withdrew") as err:
        ingest_file(vcf, full)
    assert "P0_3" not in str(err.value)
    svc = QueryService(store, lambda: query_client)
    n_withdrawn = svc.describe(full, Disclosure(k=1, min_group_size=1), None)["sample_count"]
    assert lifecycle.record_consent(store, full, admin, ["P0_3"]) == 1
    assert store.manifest(full).withdrawn_hashes() == set()
    # renewed consent: the sample counts again (its data is still stored); re-ingesting it
    # would duplicate it, which the registry refuses as before
    n_back = svc.describe(full, Disclosure(k=1, min_group_size=1), None)["sample_count"]
    assert n_back >= n_withdrawn
    with pytest.raises(SampleSheetError, match="already in dataset"):
        ingest_file(vcf, full)


def test_compact__withdrawn_samples_physically_removed_same_answers(
        tmp_path: Path, store: Store, cohorts: tuple[str, str], role_client,
        bao_server: DevServer,
        ingest_file: Callable[..., IngestResult], query_client: hvac.Client) -> None:
    full, fresh = cohorts
    admin = role_client("admin")
    svc = QueryService(store, lambda: query_client)
    expected = _all_answers(svc, fresh)
    lifecycle.withdraw(store, full, admin, ["P0_3", "P0_17"])  # batch b0001 only
    before = store.manifest(full)
    untouched = {f.path: f.sha256 for f in [before.batches[1].samples_file,
                                            *before.batches[1].variant_files]}
    old_dir = store.dataset_dir(full) / "batches" / "b0001"
    backup = tmp_path / "old-b0001"
    shutil.copytree(old_dir, backup)
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    rep = lifecycle.compact(store, full, query_client, role_client("ingest"), shredder=shredder)
    assert rep.batches == ["b0001"] and rep.removed_samples == 2 and rep.genotypes_read > 0
    assert rep.shredded_keys == [before.batches[0].genotype_key]
    # a backup of the old batch no longer yields its genotypes, not even for root
    old_file = backup / Path(before.batches[0].variant_files[0].path).relative_to(
        "batches/b0001")
    kr = Keyring(bao_server.client(), full)
    with pytest.raises((GenoVaultError, OSError)):
        pq.ParquetFile(str(old_file), decryption_properties=kr.decryption_properties(
            str(old_file), before.batches[0].variant_files[0].file_id)).read(
                columns=["genotypes"])
    after = store.manifest(full)
    assert after.batches[0].n_samples == N_PER_BATCH - 2
    assert after.batches[0].variant_files[0].path.startswith("batches/b0001.c")
    assert not (store.dataset_dir(full) / "batches" / "b0001").exists()
    assert {f.path: f.sha256 for f in [after.batches[1].samples_file,
                                       *after.batches[1].variant_files]} == untouched
    lifecycle.withdraw(store, full, admin, ["P1_5"])
    lifecycle.compact(store, full, query_client, role_client("ingest"))
    assert _all_answers(svc, full) == expected
    assert sum(b.n_samples for b in store.manifest(full).batches) == 2 * N_PER_BATCH - 3
    # the removed samples: re-ingest refused (withdrawn) until renewed consent, then allowed
    lines, _ = random_records(1, 20, seed=7, chrom="2", step=1000)
    vcf = write_vcf(tmp_path / "back.vcf", header(["P0_3"]) + lines)
    with pytest.raises(SampleSheetError, match="withdrew"):
        ingest_file(vcf, full)
    lifecycle.record_consent(store, full, admin, ["P0_3"])
    ingest_file(vcf, full)
    assert store.manifest(full).batches[-1].n_samples == 1


def test_compact__shred_old_keys_reports_a_batch_under_the_shared_key(
        tmp_path: Path, store: Store, role_client, bao_server: DevServer,
        ingest_file: Callable[..., IngestResult], query_client: hvac.Client,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch written before per-batch genotypes keys (here: one whose genotypes key is the
    dataset's shared one) cannot have its old key deleted: --shred-old-keys used to skip it
    silently, so the operator believed the old files' backup no longer yields the withdrawn
    genotypes. The report (and the CLI, and the audit record) now name it."""
    from vault.ingest import pipeline
    from vault.keys.names import transit_key_name

    monkeypatch.setattr(pipeline, "batch_genotype_key",
                        lambda ds, _name: transit_key_name(ds, "genotypes"))
    ds = f"wl-{uuid.uuid4().hex[:8]}"
    vcf, sheet = _batch(tmp_path, 0, set(), seed=3)
    ingest_file(vcf, ds, sample_sheet=sheet, bin_size=2_000_000)
    assert store.manifest(ds).batches[0].genotype_key == transit_key_name(ds, "genotypes")
    lifecycle.withdraw(store, ds, role_client("admin"), ["P0_3"])
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    events: list[dict] = []
    rep = lifecycle.compact(store, ds, query_client, role_client("ingest"), shredder=shredder,
                            audit=events.append)
    assert rep.batches == ["b0001"] and rep.shredded_keys == []
    assert rep.unshreddable == ["b0001"] and events[-1]["not_shreddable"] == ["b0001"]


def _transit_key_exists(bao_server: DevServer, name: str) -> bool:
    try:
        bao_server.client().adapter.get(f"/v1/transit/keys/{name}")
    except hvac.exceptions.InvalidPath:
        return False
    return True


def test_compact__a_later_shred_old_keys_deletes_keys_an_earlier_compaction_left(
        tmp_path: Path, store: Store, role_client, bao_server: DevServer,
        ingest_file: Callable[..., IngestResult], query_client: hvac.Client) -> None:
    """The old genotypes key of a compacted batch was deleted only by the compaction that
    rewrote the batch: one run without --shred-old-keys, or whose delete failed (Vault
    unreachable, a token without the right, a kill) after its commit, left the key for good
    (only a destruction found it), so a backup of the old files kept yielding the withdrawn
    samples' genotypes. The names are now recorded before the commit and any later
    `compact --shred-old-keys` deletes them -- never a key the manifest still names."""
    ds = f"wl-{uuid.uuid4().hex[:8]}"
    for b in range(2):
        vcf, sheet = _batch(tmp_path, b, set(), seed=11 + b)
        ingest_file(vcf, ds, sample_sheet=sheet, bin_size=2_000_000)
    admin = role_client("admin")
    first = store.manifest(ds).batches[0].genotype_key
    lifecycle.withdraw(store, ds, admin, ["P0_3"])
    rep = lifecycle.compact(store, ds, query_client, role_client("ingest"))  # no shredder
    assert rep.batches == ["b0001"] and rep.shredded_keys == []
    assert _transit_key_exists(bao_server, first)
    # a delete that fails after the commit: a token that may not delete keys
    second = store.manifest(ds).batches[1].genotype_key
    lifecycle.withdraw(store, ds, admin, ["P1_5"])
    with pytest.raises(GenoVaultError):
        lifecycle.compact(store, ds, query_client, role_client("ingest"),
                          shredder=role_client("ingest"))
    assert store.manifest(ds).batches[1].n_samples == N_PER_BATCH - 1  # committed
    assert _transit_key_exists(bao_server, first) and _transit_key_exists(bao_server, second)
    # nothing left to compact: a shredder run deletes both, and no key still in use
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    events: list[dict] = []
    rep = lifecycle.compact(store, ds, query_client, role_client("ingest"), shredder=shredder,
                            audit=events.append)
    assert rep.batches == [] and sorted(rep.shredded_keys) == sorted([first, second])
    assert sorted(events[-1]["keys_deleted"]) == sorted([first, second])
    assert not _transit_key_exists(bao_server, first)
    assert not _transit_key_exists(bao_server, second)
    m = store.manifest(ds)
    for key in m.transit_keys("genotypes"):
        assert _transit_key_exists(bao_server, key)
    svc = QueryService(store, lambda: query_client)
    assert svc.statistic(ds, "frequency", Selection(), None, Disclosure(k=1, min_group_size=1),
                         limit=10)["count"] > 0
    # the record is gone once every key it named is deleted; the next run deletes nothing
    assert lifecycle.compact(store, ds, query_client, role_client("ingest"),
                             shredder=shredder).shredded_keys == []


def test_compact__a_forged_retired_key_record_cannot_delete_a_key_in_use(
        tmp_path: Path, store: Store, role_client, bao_server: DevServer,
        ingest_file: Callable[..., IngestResult], query_client: hvac.Client) -> None:
    """The record is a plain file in the dataset folder: whatever it names, only this
    dataset's per-batch genotypes keys that the signed manifest no longer names are deleted."""
    import json

    ds = f"wl-{uuid.uuid4().hex[:8]}"
    vcf, sheet = _batch(tmp_path, 0, set(), seed=5)
    ingest_file(vcf, ds, sample_sheet=sheet, bin_size=2_000_000)
    m = store.manifest(ds)
    in_use = [*m.transit_keys("genotypes"), m.keys["sites"]]
    (store.dataset_dir(ds) / lifecycle.RETIRED_KEYS).write_text(json.dumps(
        {"retired_genotypes_keys": [*in_use, "genovault.other.genotypes.b0001"]}))
    shredder = bao_server.client(mint_role_token(bao_server.client(), "shredder"))
    rep = lifecycle.compact(store, ds, query_client, role_client("ingest"), shredder=shredder)
    assert rep.shredded_keys == []
    for key in in_use:
        assert _transit_key_exists(bao_server, key)
