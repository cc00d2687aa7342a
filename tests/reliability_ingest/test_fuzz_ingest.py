"""A few fuzzed files ingested end to end against a real OpenBao: an accepted file reads back
exactly the reference decoder's genotypes; a refused one raises InvalidInput and leaves no
dataset and no staging debris. GENOVAULT_FUZZ_INGEST_EXAMPLES sets the count (default 8)."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import hvac
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.reference.vcf_text import decode_text
from tests.reliability_ingest.fuzzgen import FuzzFile, fuzz_file
from tests.reliability_ingest.support import env_int
from tests.support.vcfgen import unpack
from vault.errors import InvalidInput, SampleSheetError
from vault.ingest.pipeline import IngestOptions, ingest
from vault.keys.kms import Keyring
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

pytestmark = pytest.mark.integration

N = env_int("GENOVAULT_FUZZ_INGEST_EXAMPLES", 8)
_count = [0]


@settings(max_examples=N, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(f=fuzz_file())
def test_ingest__fuzzed_file_end_to_end(
        f: FuzzFile, role_client: Callable[[str], hvac.Client], query_client: hvac.Client,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    _count[0] += 1
    ds = f"fuzz-{_count[0]}"
    folder = tmp_path_factory.mktemp("fi")
    store = Store(folder / "store")
    path = folder / ("in.vcf" if f.container == "plain" else "in.vcf.gz")
    path.write_bytes(f.raw)
    try:
        res = ingest(path, ds, client=role_client("ingest"), store=store,
                     options=IngestOptions(progress=False))
    except (InvalidInput, SampleSheetError):
        # SampleSheetError: a duplicate sample id in the header (refused before any record)
        assert ds not in store.list()
        assert not store.dataset_dir(ds).exists()
        return
    reader = DatasetReader(store, ds, Keyring(query_client, ds))
    n = reader.n_samples
    blocks = list(reader.blocks())
    got = unpack(np.concatenate([b.packed for b in blocks]), n) if blocks else \
        np.zeros((0, n), np.int8)
    text = gzip.decompress(f.raw) if f.framing_damaged else f.text
    want = decode_text(text.decode("utf-8", "surrogateescape"), n)
    assert got.tolist() == [r.codes for r in want], res.qc
