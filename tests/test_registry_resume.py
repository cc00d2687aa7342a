"""Rerunning an ingest after a kill: own registrations are taken back only when complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hvac
import pytest

from tests.support.vcfgen import header, write_vcf
from vault.errors import SampleSheetError
from vault.keys import registry
from vault.keys.kms import Keyring
from vault.store.dataset import Store
from vault.store.fsutil import sha256_file

pytestmark = pytest.mark.integration
SAMPLES = [f"RR{i:03d}" for i in range(6)]
UID = "ab" * 16


def _setup(tmp_path: Path, store: Store, client: hvac.Client, ds: str, state: str,
           n_registered: int) -> Path:
    vcf = write_vcf(tmp_path / "r.vcf", header(SAMPLES) + [
        "1\t10\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(["0/1"] * len(SAMPLES))])
    keyring = Keyring(client, ds, bound=True)  # as the first, interrupted ingest made them
    keyring.ensure_keys()
    pseudonyms = keyring.pseudonymise(SAMPLES)
    registry.register(client, ds, UID, pseudonyms[:n_registered])
    pending = store.dataset_dir(ds) / ".pending" / sha256_file(vcf)
    pending.parent.mkdir(parents=True)
    pending.write_text(f"{UID} {state}".strip())
    return vcf


def test_rerun__complete_registration_is_taken_back(tmp_path: Path, store: Store,
                                                    ingest_client: hvac.Client,
                                                    ingest_file: Callable) -> None:
    vcf = _setup(tmp_path, store, ingest_client, "resume-ok", "complete", len(SAMPLES))
    res = ingest_file(vcf, "resume-ok")
    assert res.manifest.uid == UID and res.manifest.sample_count == len(SAMPLES)
    assert list((store.dataset_dir("resume-ok") / ".pending").iterdir()) == []


def test_rerun__interrupted_registration_is_refused_with_a_hint(
        tmp_path: Path, store: Store, ingest_client: hvac.Client,
        ingest_file: Callable) -> None:
    vcf = _setup(tmp_path, store, ingest_client, "resume-cut", "", 2)
    with pytest.raises(SampleSheetError, match="interrupted while registering") as info:
        ingest_file(vcf, "resume-cut")
    assert "2 sample(s) are already in dataset" in str(info.value)
    assert not store.exists("resume-cut")
