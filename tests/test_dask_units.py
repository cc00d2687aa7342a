"""Dask execution pieces that need no cluster and no Vault: what may travel, what may not."""

from __future__ import annotations

import pickle
from pathlib import Path

import cloudpickle
import hvac
import numpy as np
import pyarrow as pa
import pytest

import vault.ingest.distributed as vid
import vault.query.distributed as vd
from vault.errors import ConfigError
from vault.keys.kms import Keyring
from vault.settings import load_settings
from vault.store.reader import GenotypeBlock


def _counts(v: int = 3, g: int = 2) -> vd.PartitionCounts:
    s = pa.array(["A"] * v, pa.string())
    return vd.PartitionCounts("1", np.arange(v, dtype=np.int64), s, s, s,
                              np.zeros((v, 4), np.int64), np.zeros((v, g, 4), np.int64))


def test_dask_units__keyring_refuses_every_pickler() -> None:
    kr = Keyring(hvac.Client(url="http://127.0.0.1:1", token="not-a-real-token"), "ds1")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match="cannot be pickled"):
            dumps(kr)
        with pytest.raises(TypeError, match="cannot be pickled"):
            dumps({"nested": [kr]})
    assert "not-a-real-token" not in repr(kr)


def test_dask_units__only_counts_are_accepted_from_workers() -> None:
    assert vd._reject(_counts(), 2) is not None
    assert vd._reject(None, 2) is None
    block = GenotypeBlock("1", pa.table({"pos": [1]}), np.zeros((1, 3), np.uint8), 10,
                          np.ones((1, 1), np.bool_))
    bad = [np.zeros((3, 25), np.uint8), block, {"overall": np.zeros((3, 4), np.int64)}]
    for obj in bad:
        with pytest.raises(vd.DistributedQueryError, match="not per-variant counts"):
            vd._reject(obj, 2)
    c = _counts()
    c.groups = np.zeros((3, 25), np.uint8)  # a packed genotype block smuggled in
    with pytest.raises(vd.DistributedQueryError, match="other than per-variant counts"):
        vd._reject(c, 2)
    c = _counts()
    with pytest.raises(vd.DistributedQueryError):
        vd._reject(c, 3)  # groups the service did not ask for


def test_dask_units__sealed_secret_never_shows() -> None:
    s = vd._Sealed("hvs.secret-wrapping-token")
    assert "secret" not in repr(s) and "secret" not in str(s) and "secret" not in f"{[s]}"
    assert pickle.loads(pickle.dumps(s)).value == "hvs.secret-wrapping-token"


def test_dask_units__a_worker_without_credential_refuses_the_task() -> None:
    with pytest.raises(vd.WorkerCredentialMissing, match="holds no Vault credential"):
        vd.count_partition("unknown-id", "/nonexistent", "ds1", "v", 0, 0, None, ())


@pytest.mark.parametrize("spec, want", [
    pytest.param("local:2", ("local", 2), id="local"),
    pytest.param("tcp://10.0.0.5:8786", ("tcp://10.0.0.5:8786", None), id="tcp"),
    pytest.param("tls://sched:8786", ("tls://sched:8786", None), id="tls"),
])
def test_dask_units__cluster_spec(spec: str, want: tuple[str, int | None]) -> None:
    assert vd.parse_spec(spec) == want


@pytest.mark.parametrize("spec", ["local:0", "local:x", "sched:8786", "tcp://", "local:"])
def test_dask_units__bad_cluster_spec_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid Dask cluster"):
        vd.parse_spec(spec)


def test_dask_units__settings() -> None:
    s = load_settings(dask_scheduler="local:2")
    assert (s.dask_scheduler, s.dask_credential_ttl, s.dask_min_partitions) == ("local:2",
                                                                               "10m", 4)
    assert vd.executor_from_settings(load_settings(), None, lambda: None) is None
    with pytest.raises(ConfigError, match="dask_credential_ttl"):
        load_settings(dask_credential_ttl="ten minutes")
    assert vd._seconds("90s") == 90 and vd._seconds("10m") == 600 and vd._seconds("2") == 2


@pytest.mark.parametrize("args", [
    pytest.param(["report", "ds1", "--dask", "sched:8786"], id="report"),
    pytest.param(["serve", "--dask", "local:zero"], id="serve"),
])
def test_dask_units__cli_refuses_a_bad_cluster_before_starting(args: list[str],
                                                              tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vault.cli import main

    r = CliRunner().invoke(main, args, env={"GENOVAULT_HOME": str(tmp_path),
                                            "VAULT_ADDR": None, "VAULT_TOKEN": None})
    assert r.exit_code == 2, r.output
    assert "invalid Dask cluster" in r.output


def _file_result(n: int = 3) -> vid.FileResult:

    entry = {"path": "variants/c0001/bin000004.parquet", "rows": 10, "bytes": 99,
             "sha256": "a" * 64, "tail_sha256": "b" * 64, "contig": 1, "bin": 4}
    return vid.FileResult([entry], {"skipped": {}, "missing_per_sample": [0] * n,
                                    "records_read": 10}, ["1", "2"], [("2", 1, 9, 30)], None)


def test_dask_units__ingest_tasks_may_return_only_entries_and_counts() -> None:

    assert vid._reject(_file_result(), 3, ["1"]) is not None
    bad = [np.zeros((3, 25), np.uint8), {"entries": []}, None]
    for obj in bad:
        with pytest.raises(vid.DistributedIngestError, match="not file entries"):
            vid._reject(obj, 3, ["1"])
    smuggled = []
    r = _file_result()
    r.entries[0]["genotypes"] = b"\x00" * 25  # an extra field
    smuggled.append(r)
    r = _file_result()
    r.entries[0]["path"] = "../../elsewhere/bin000004.parquet"  # outside its folder
    smuggled.append(r)
    r = _file_result()
    r.qc["missing_per_sample"] = ["NA12878", 0, 0]  # a sample id in the counts
    smuggled.append(r)
    r = _file_result()
    r.entries[0]["contig"] = 0  # the path says c0001
    smuggled.append(r)
    smuggled.append(_file_result(4))  # per-sample counts of another width
    for obj in smuggled:
        with pytest.raises(vid.DistributedIngestError, match="other than file entries"):
            vid._reject(obj, 3, ["1"])
    with pytest.raises(vid.DistributedIngestError):  # the batch's contigs renumbered
        vid._reject(_file_result(), 3, ["2"])


def test_dask_units__a_bound_dataset_s_entries_carry_exactly_a_file_id() -> None:
    bound = _file_result()
    bound.entries[0]["file_id"] = "c" * 32
    assert vid._reject(bound, 3, ["1"], bound=True) is not None
    with pytest.raises(vid.DistributedIngestError, match="other than file entries"):
        vid._reject(bound, 3, ["1"])  # an unbound dataset's entry has none
    with pytest.raises(vid.DistributedIngestError, match="other than file entries"):
        vid._reject(_file_result(), 3, ["1"], bound=True)  # missing
    for bad in ("C" * 32, "c" * 31, 7, "../" + "c" * 29):
        r = _file_result()
        r.entries[0]["file_id"] = bad
        with pytest.raises(vid.DistributedIngestError, match="other than file entries"):
            vid._reject(r, 3, ["1"], bound=True)


def test_dask_units__a_worker_s_invalid_input_is_raised_again_with_file_and_line() -> None:
    from vault.errors import InvalidInput, SampleSheetError

    failure = pickle.loads(pickle.dumps(vid.TaskFailure.of(
        InvalidInput("/data/c.vcf", 41, "POS is not a number: '12x'"))))
    with pytest.raises(InvalidInput, match=r"^/data/c\.vcf:41: POS is not") as err:
        vid._reject(failure, 3, [])
    assert err.value.path == "/data/c.vcf" and err.value.line == 41
    with pytest.raises(SampleSheetError, match="changed"):
        vid._reject(vid.TaskFailure.of(SampleSheetError("changed")), 3, [])


def _staged(tmp_path: Path) -> tuple[Path, Path, vid.FileResult]:
    """A staging folder with one task's folder holding one Parquet file and its entry."""
    import pyarrow.parquet as pq

    from vault.store.fsutil import parquet_tail_sha256, sha256_file

    staging = tmp_path / "staging"
    src = staging / "parts" / "f0001" / "variants" / "c0001" / "bin000004.parquet"
    src.parent.mkdir(parents=True)
    (staging / "variants").mkdir()
    pq.write_table(pa.table({"x": list(range(1000))}), src)
    (src.parent / f"_KEY_MATERIAL_FOR_{src.name}.json").write_text("{}")
    r = _file_result()
    r.entries[0].update(bytes=src.stat().st_size, sha256=sha256_file(src),
                        tail_sha256=parquet_tail_sha256(src))
    return staging, src, r


class _F:
    path = Path("/data/a.vcf.gz")


def test_dask_units__staged_files_are_verified_and_renumbered(tmp_path: Path) -> None:
    staging, _src, r = _staged(tmp_path)
    first, _src2, r2 = _staged(tmp_path / "first")
    r2.contigs = ["1", "3", "2"]  # an earlier file met contig 3 first: "2" becomes c0002
    r2.entries[0]["path"] = "variants/c0002/bin000004.parquet"
    r2.entries[0]["contig"] = 2
    contigs = ["1"]
    (staging / "parts" / "f0002" / "variants" / "c0002").mkdir(parents=True)
    for name in ("bin000004.parquet", "_KEY_MATERIAL_FOR_bin000004.parquet.json"):
        (first / "parts" / "f0001" / "variants" / "c0001" / name).rename(
            staging / "parts" / "f0002" / "variants" / "c0002" / name)
    r2.entries[0]["path"] = "variants/c0002/bin000005.parquet"
    (staging / "parts" / "f0002" / "variants" / "c0002" / "bin000004.parquet").rename(
        staging / "parts" / "f0002" / "variants" / "c0002" / "bin000005.parquet")
    (staging / "parts" / "f0002" / "variants" / "c0002" /
     "_KEY_MATERIAL_FOR_bin000004.parquet.json").rename(
        staging / "parts" / "f0002" / "variants" / "c0002" /
        "_KEY_MATERIAL_FOR_bin000005.parquet.json")
    r2.entries[0]["bin"] = 5
    out = vid._place(staging, staging / "parts", [_F(), _F()], [r, r2], contigs, 1_000_000)
    # the file's contig 1 ("2") and the second file's contig 2 ("2") are both c0001; "3" next
    assert contigs == ["1", "2", "3"]
    assert [(e["path"], e["contig"]) for e in out] == [
        ("variants/c0001/bin000004.parquet", 1), ("variants/c0001/bin000005.parquet", 1)]
    assert all((staging / e["path"]).is_file() for e in out)
    assert not (staging / "parts").exists()
    km = staging / "variants" / "c0001" / "_KEY_MATERIAL_FOR_bin000005.parquet.json"
    assert km.is_file()


def test_dask_units__a_staged_file_unlike_its_entry_is_refused(tmp_path: Path) -> None:
    staging, src, r = _staged(tmp_path / "flip")
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 1
    src.write_bytes(bytes(data))
    with pytest.raises(vid.IntegrityIngestError, match="another checksum"):
        vid._place(staging, staging / "parts", [_F()], [r], [], 1_000_000)
    staging, src, r = _staged(tmp_path / "extra")
    (src.parent / "bin000005.parquet").write_bytes(b"PAR1")
    with pytest.raises(vid.IntegrityIngestError, match="did not report"):
        vid._place(staging, staging / "parts", [_F()], [r], [], 1_000_000)
    staging, src, r = _staged(tmp_path / "gone")
    src.unlink()
    with pytest.raises(vid.IntegrityIngestError, match="is missing"):
        vid._place(staging, staging / "parts", [_F()], [r], [], 1_000_000)
