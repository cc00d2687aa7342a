"""Multi-file ingest on a real Dask LocalCluster (worker processes) and a real OpenBao: the
same batch as the local path, one commit, nothing visible after a failed task, only file
entries and counts in the results, workers holding encrypt-only tokens of their own."""

from __future__ import annotations

import pickle
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import hvac
import hvac.exceptions
import pytest

import vault.ingest.distributed as vid
import vault.keys.workers
import vault.query.distributed as vd
from tests.support.baodev import DevServer
from tests.support.daskcluster import two_worker_client
from tests.test_ingest_multi import assert_same, content, samples_of, view
from vault.errors import DuplicateIngest, InvalidInput
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.bootstrap import mint_role_token
from vault.keys.kms import DatasetKeys, Keyring
from vault.keys.workers import mint_wrapped_ingest_token, unwrap_token
from vault.store.dataset import Store

pytestmark = pytest.mark.integration  # real OpenBao, bcftools, worker processes

CEU = Path(__file__).parent / "data" / "vcf" / "SeqArray__CEU_Exon.vcf.gz"  # 90 samples


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread each, on loopback."""
    yield from two_worker_client()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CEU file in three parts split at 10 Mb partition boundaries (chromosome 1 in two,
    2-9, 10-22), a sample sheet, and a copy of the last part with a bad POS."""
    d = tmp_path_factory.mktemp("dask-multi")
    out = {
        "a": view(d / "a.vcf.gz", "-t", "1:1-109999999"),
        "b": view(d / "b.vcf.gz", "-t", "1:110000000-300000000," +
                  ",".join(str(c) for c in range(2, 10))),
        "c": view(d / "c.vcf.gz", "-t", ",".join(str(c) for c in range(10, 23))),
    }
    sheet = d / "sheet.tsv"
    sheet.write_text("sample\tpop\n" + "".join(f"{s}\t{'XYZ'[i % 3]}\n"
                                                for i, s in enumerate(samples_of(CEU))))
    out["sheet"] = sheet
    text = subprocess.run(["bcftools", "view", str(out["c"])], check=True,
                          capture_output=True, text=True).stdout.split("\n")
    first = next(i for i, line in enumerate(text) if line and not line.startswith("#"))
    f = text[first + 40].split("\t")
    text[first + 40] = "\t".join([f[0], "12x", *f[2:]])
    (d / "c_bad.vcf").write_text("\n".join(text))
    out["bad"] = d / "c_bad.vcf"
    out["bad_line"] = Path(str(first + 41))  # 1-based line number of the bad record
    return out


def _ingest_client(bao: DevServer) -> hvac.Client:
    return bao.client(mint_role_token(bao.client(), "ingest", ttl="15m"))


def _query_client(bao: DevServer) -> hvac.Client:
    return bao.client(mint_role_token(bao.client(), "query", ttl="15m"))


class Recorder:
    """What the client sends to and takes back from the cluster: task keys, arguments and
    results, as they are pickled."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.back: list[bytes] = []
        submit, reject = client.submit, vid._reject

        def recording_submit(fn: Any, *args: Any, key: str, **kw: Any) -> Any:
            self.sent.append((key, cloudpickle.dumps((fn, args))))
            return submit(fn, *args, key=key, **kw)

        def recording_reject(obj: Any, *a: Any) -> Any:
            self.back.append(pickle.dumps(obj))
            return reject(obj, *a)

        monkeypatch.setattr(client, "submit", recording_submit)
        monkeypatch.setattr(vid, "_reject", recording_reject)


def test_dask_ingest__equals_the_local_multi_file_ingest(
        cluster: Any, bao_server: DevServer, bootstrapped: object, files: dict[str, Path],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds, ds_local = f"dmul-{uuid.uuid4().hex[:8]}", f"dloc-{uuid.uuid4().hex[:8]}"
    given = [files["c"], files["a"], files["b"]]
    local_store, dask_store = Store(tmp_path / "local"), Store(tmp_path / "dask")
    ingest(given, ds_local, client=_ingest_client(bao_server), store=local_store,
           sample_sheet=files["sheet"], options=IngestOptions(progress=False))
    rec = Recorder(monkeypatch, cluster)
    accessors: list[str] = []
    real_mint = vault.keys.workers.mint_wrapped_ingest_token

    def mint(*a: Any, **kw: Any) -> tuple[str, str]:
        out = real_mint(*a, **kw)
        accessors.append(out[1])
        return out

    monkeypatch.setattr(vault.keys.workers, "mint_wrapped_ingest_token", mint)
    ex = vid.DaskIngest(cluster, lambda: bao_server.client())
    ingest_client = _ingest_client(bao_server)
    res = ingest(given, ds, client=ingest_client, store=dask_store,
                 sample_sheet=files["sheet"], options=IngestOptions(progress=False),
                 executor=ex)
    assert ex.last["tasks"] == 3 and ex.last["workers"] == 2
    assert [s["name"] for s in res.sources] == ["a.vcf.gz", "b.vcf.gz", "c.vcf.gz"]
    m = dask_store.manifest(ds)
    assert m.version == 1 and len(m.batches) == 1 and len(m.batches[0].sources) == 3
    qclient = _query_client(bao_server)
    want, got = content(local_store, ds_local, qclient), content(dask_store, ds, qclient)
    assert len(got["sites"]) > 1000
    assert_same(got, want)  # every site column, genotype, partition, QC (groups), sample
    assert not any((dask_store.dataset_dir(ds) / ".staging").iterdir())
    # what travelled: three tasks with random keys; no sample id, no token, either way
    assert len(rec.sent) == 3 and len(rec.back) == 3
    secrets_ = [bao_server.root_token, ingest_client.token, *samples_of(CEU)]
    for key, blob in rec.sent:
        assert key.startswith(vid.TASK_PREFIX) and ds not in key
        assert not any(s.encode() in blob for s in secrets_)
    for blob in rec.back:
        assert not any(s.encode() in blob for s in secrets_)
        assert set(pickle.loads(blob).entries[0]) == {"path", "rows", "bytes", "sha256",
                                                      "tail_sha256", "contig", "bin",
                                                      "file_id"}  # a bound dataset
    # every worker dropped (and revoked) its credential: Vault knows the tokens no more
    assert all(not state for state in cluster.run(vd.worker_state).values())
    assert len(accessors) == 2
    for a in accessors:
        with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
            bao_server.client().auth.token.lookup_accessor(a)


def test_dask_ingest__bad_file_on_a_worker_leaves_nothing(
        cluster: Any, bao_server: DevServer, bootstrapped: object, files: dict[str, Path],
        tmp_path: Path) -> None:
    ds = f"dbad-{uuid.uuid4().hex[:8]}"
    store = Store(tmp_path / "store")
    ex = vid.DaskIngest(cluster, lambda: bao_server.client())
    with pytest.raises(InvalidInput) as err:
        ingest([files["a"], files["b"], files["bad"]], ds, client=_ingest_client(bao_server),
               store=store, sample_sheet=files["sheet"], options=IngestOptions(progress=False),
               executor=ex)
    assert err.value.path == str(files["bad"]) and err.value.line == int(str(files["bad_line"]))
    assert f"{files['bad']}:{err.value.line}: " in str(err.value)
    assert not store.exists(ds) and not store.dataset_dir(ds).exists()
    assert all(not state for state in cluster.run(vd.worker_state).values())
    # nothing kept, not even the sample registrations: the good files ingest after it
    ingest([files["a"], files["b"], files["c"]], ds, client=_ingest_client(bao_server),
           store=store, sample_sheet=files["sheet"], options=IngestOptions(progress=False),
           executor=ex)
    assert store.manifest(ds).version == 1
    # the duplicate-file check holds as on the local path (before any task is sent)
    with pytest.raises(DuplicateIngest, match="already ingested"):
        ingest([files["b"], files["c"]], ds, client=_ingest_client(bao_server), store=store,
               options=IngestOptions(progress=False), executor=ex)
    assert store.manifest(ds).version == 1


def test_dask_ingest__split_inside_a_partition_refused_with_advice(
        cluster: Any, bao_server: DevServer, bootstrapped: object, files: dict[str, Path],
        tmp_path: Path) -> None:
    a = view(tmp_path / "a5.vcf.gz", "-t", "1:1-113056912")
    b = view(tmp_path / "b5.vcf.gz", "-t", "1:113056913-300000000")
    ds = f"dsplit-{uuid.uuid4().hex[:8]}"
    store = Store(tmp_path / "store")
    with pytest.raises(Exception, match=r"a5\.vcf\.gz and .*b5\.vcf\.gz both hold records on "
                                        "contig '1'.*without --dask"):
        ingest([a, b], ds, client=_ingest_client(bao_server), store=store,
               options=IngestOptions(progress=False),
               executor=vid.DaskIngest(cluster, lambda: bao_server.client()))
    assert not store.exists(ds)


def test_dask_ingest__worker_credential_is_encrypt_only(
        bao_server: DevServer, bootstrapped: object) -> None:
    ds = f"dcred-{uuid.uuid4().hex[:8]}"
    keys = DatasetKeys.for_dataset(ds)
    Keyring(_ingest_client(bao_server), ds).ensure_keys()
    root = bao_server.client()
    wrapped, _accessor = mint_wrapped_ingest_token(root, ds, "2m", "30s")
    worker, ttl = unwrap_token(bao_server.addr, wrapped)
    assert 0 < ttl <= 120
    info = worker.auth.token.lookup_self()["data"]
    assert info["policies"] == [f"genovault-ingest-{ds}.encrypt"] and not info["renewable"]
    transit = worker.secrets.transit
    ct = transit.encrypt_data(name=keys.genotypes, plaintext="AAAA")["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.Forbidden):  # the point: it can never read back
        transit.decrypt_data(name=keys.genotypes, ciphertext=ct)
    with pytest.raises(hvac.exceptions.Forbidden):  # no pseudonyms
        transit.generate_hmac(name=keys.pseudonym, hash_input="AAAA", algorithm="sha2-256",
                              key_version=1)
    with pytest.raises(hvac.exceptions.Forbidden):  # no key creation (encrypt-upsert)
        transit.encrypt_data(name=f"genovault.{ds}.newkey", plaintext="AAAA")
    other = DatasetKeys.for_dataset(f"{ds}-x")
    Keyring(_ingest_client(bao_server), f"{ds}-x").ensure_keys(["genotypes"])
    with pytest.raises(hvac.exceptions.Forbidden):  # no other dataset
        transit.encrypt_data(name=other.genotypes, plaintext="AAAA")
    with pytest.raises(hvac.exceptions.Forbidden):  # no manifest signing
        transit.sign_data(name="genovault.manifest", hash_input="AAAA")
    # and the wrapping token unwraps once only
    with pytest.raises(Exception, match="refused to unwrap"):
        unwrap_token(bao_server.addr, wrapped)


def test_dask_ingest__cli_local_cluster(bao_server: DevServer, bootstrapped: object,
                                        files: dict[str, Path], tmp_path: Path) -> None:
    import json

    from tests.test_crash import child_env, run_cli

    ds = f"dcli-{uuid.uuid4().hex[:8]}"
    store = Store(tmp_path / "store")
    env = child_env(bao_server, bao_server.root_token, store, tmp_path / "home")
    args = ["ingest", str(files["c"]), str(files["a"]), str(files["b"]), "-d", ds,
            "--samples", str(files["sheet"]), "--json"]
    bad = run_cli([*args, "--dask", "local:x"], env, kill_at_commit=False)
    assert bad.returncode != 0 and "invalid Dask cluster 'local:x'" in bad.stderr
    assert not store.exists(ds)
    done = run_cli([*args, "--dask", "local:2"], env, kill_at_commit=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["batch"] == "b0001" and [s["name"] for s in out["sources"]] == [
        "a.vcf.gz", "b.vcf.gz", "c.vcf.gz"]
    assert store.manifest(ds).version == 1 and bao_server.root_token not in done.stderr
