"""Selected INFO fields (``ingest --info``): split per ALT like ``bcftools norm -m-``, typed by
the header, checked at their line, encrypted with the sites key.

The oracle of the splitting is bcftools itself: ``bcftools norm -m-`` on the same real file,
read back with ``bcftools query``. The store side is the numba parser, the INFO extraction,
Parquet encryption with keys in a real OpenBao and the decrypting reader.
"""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import numpy as np
import pyarrow as pa
import pytest

from tests.support.baodev import DevServer
from vault.errors import ConfigError, IngestError, InvalidInput
from vault.ingest.header import parse_header
from vault.ingest.pipeline import IngestOptions, IngestResult, ingest
from vault.ingest.vcf_info import parse_info_option, resolve
from vault.keys.bootstrap import BootstrapReport, mint_role_token
from vault.keys.kms import Keyring
from vault.store import format as fmt
from vault.store.dataset import Store
from vault.store.reader import DatasetReader

DATA = Path(__file__).parent / "data" / "vcf"
NORM = DATA / "bcftools__norm.vcf"  # Number=A/R/G of every type, multiallelic, '.' values
CHRM = DATA / "bio2zarr__chr_m_indels.vcf.gz"  # GATK: A fields at 2-5 ALTs, flags, VQSLOD
MPILEUP = DATA / "bcftools__mpileup.X.vcf"  # Number=R (QS) and Number=16 (I16) with <*>
BCF = DATA / "bio2zarr__1kg_2020_chr20_annotations.bcf"  # the BCF path: INFO rendered as text

# file -> (kept fields, skip_invalid: bcftools__norm.vcf has one ALT GenoVault refuses)
CASES = {
    "norm": (NORM, ["AC", "AN", "DP", "END", "INDEL", "ISTR", "XRF", "XAF", "XGF", "XRI", "XAI",
                    "XGI", "XRS", "XAS", "XGS"], True),
    "chrM": (CHRM, ["AC", "AF", "AN", "MLEAC", "MLEAF", "VQSLOD", "culprit", "FS",
                    "NEGATIVE_TRAIN_SITE", "POSITIVE_TRAIN_SITE"], False),
    "mpileupX": (MPILEUP, ["DP", "QS", "I16", "INDEL", "IMF", "SGB"], False),
    "bcf": (BCF, ["AC", "AF", "AN", "MLEAC", "VQSLOD", "culprit", "DS", "NEGATIVE_TRAIN_SITE",
                  "ANN", "HWE_EUR"], False),
}


def _header(path: Path) -> Any:
    text = subprocess.run(["bcftools", "view", "-h", str(path)], check=True,
                          capture_output=True, text=True).stdout
    return parse_header(text.rstrip("\n").split("\n"), str(path))


def _bcftools_split(path: Path, fields: list[str]) -> dict[tuple[str, int, str, str], dict]:
    """What ``bcftools norm -m-`` makes of each kept field, per (chrom, pos, ref, alt)."""
    spec = resolve(fields, _header(path), str(path))
    fmt_str = "%CHROM\t%POS\t%REF\t%ALT\t" + "\t".join(f"%INFO/{f}" for f in fields) + "\n"
    norm = subprocess.run(["bcftools", "norm", "-m-", "-Ou", str(path)], check=True,
                          capture_output=True).stdout
    text = subprocess.run(["bcftools", "query", "-f", fmt_str, "-"], input=norm, check=True,
                          capture_output=True).stdout.decode()
    out: dict[tuple[str, int, str, str], dict] = {}
    for line in text.splitlines():
        cols = line.split("\t")
        key = (cols[0], int(cols[1]), cols[2], cols[3])
        assert key not in out, f"duplicate row {key}"
        out[key] = {f.id: _decode(v, f.number, f.type) for f, v in zip(spec.fields, cols[4:],
                                                                       strict=True)}
    return out


def _decode(text: str, number: str, vcf_type: str) -> Any:
    if vcf_type == "Flag":
        return text == "1"
    conv: Callable[[str], Any] = {"Integer": int, "Float": float}.get(vcf_type, str)
    if text == ".":
        return None
    items = [None if x == "." else conv(x) for x in text.split(",")]
    return items[0] if number in ("A", "1") else items


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=2e-6)
    return a == b and type(a) is type(b)


@pytest.fixture(scope="module")
def clients(bao_server: DevServer,
            bootstrapped: BootstrapReport) -> tuple[hvac.Client, hvac.Client]:
    root = bao_server.client()
    return (bao_server.client(mint_role_token(root, "ingest", ttl="15m")),
            bao_server.client(mint_role_token(root, "query", ttl="15m")))


@pytest.fixture(scope="module")
def split_store(tmp_path_factory: pytest.TempPathFactory,
                clients: tuple[hvac.Client, hvac.Client]) -> tuple[Store, dict[str, Any]]:
    """Each CASES file ingested once with its kept fields."""
    store = Store(tmp_path_factory.mktemp("info") / "store")
    results = {}
    for name, (path, fields, skip) in CASES.items():
        results[name] = ingest(path, name.lower(), client=clients[0], store=store,
                               options=IngestOptions(progress=False, info=tuple(fields),
                                                     skip_invalid=skip))
    return store, results


def _rows(store: Store, client: hvac.Client, ds: str, fields: list[str]) -> dict:
    reader = DatasetReader(store, ds, Keyring(client, ds))
    cols = ["chrom", "pos", "ref", "alt", *[fmt.info_column(f) for f in fields]]
    table = pa.concat_tables([b.sites for b in reader.blocks(site_columns=cols,
                                                             genotypes=False)])
    out = {}
    for r in table.to_pylist():
        key = (r["chrom"], r["pos"], r["ref"], r["alt"])
        assert key not in out
        out[key] = {f: r[fmt.info_column(f)] for f in fields}
    return out


@pytest.mark.integration
@pytest.mark.parametrize("name", list(CASES))
def test_ingest_info__split_equals_bcftools_norm(
        name: str, split_store: tuple[Store, dict[str, IngestResult]],
        clients: tuple[hvac.Client, hvac.Client]) -> None:
    path, fields, skip = CASES[name]
    store, results = split_store
    ours = _rows(store, clients[1], name.lower(), fields)
    theirs = _bcftools_split(path, fields)
    skipped = results[name].qc["skipped_records"]
    if skip:  # the one record GenoVault refuses (ALT 'I') is the only difference
        assert skipped == {"bad_alt": 1}
        missing = set(theirs) - set(ours)
        assert [k[3] for k in missing] == ["I"]
        theirs = {k: v for k, v in theirs.items() if k not in missing}
    else:
        assert skipped == {}
    assert set(ours) == set(theirs)
    if name != "bcf":  # that one file has no multiallelic record
        assert results[name].qc["multiallelic_split_rows_added"] > 0
    assert len(theirs) > 10
    diffs = [(k, f, ours[k][f], theirs[k][f]) for k in theirs for f in fields
             if not _same(ours[k][f], theirs[k][f])]
    assert not diffs, diffs[:5]


@pytest.mark.integration
def test_ingest_info__types_nulls_and_flags(split_store: tuple[Store, dict],
                                            clients: tuple[hvac.Client, hvac.Client]) -> None:
    store, _ = split_store
    reader = DatasetReader(store, "norm", Keyring(clients[1], "norm"))
    info = reader.info_columns()
    assert info[fmt.info_column("AC")] == pa.int64()  # Number=A Integer: one value per row
    assert info[fmt.info_column("XRF")] == pa.list_(pa.float64())  # R: [REF, this ALT]
    assert info[fmt.info_column("XGS")] == pa.list_(pa.string())  # G: [0/0, 0/k, k/k]
    assert info[fmt.info_column("INDEL")] == pa.bool_()
    assert info[fmt.info_column("ISTR")] == pa.string()
    rows = _rows(store, clients[1], "norm", ["AC", "XRF", "XGF", "INDEL", "END"])
    # AC=. is null, never 0; an absent field is null; an absent flag is False (not null)
    assert rows[("20", 274, "AAAAAAAAA", "AAAAAAAAAAAAAAAAAAA")]["AC"] is None
    assert rows[("20", 275, "A", "C")]["AC"] == 0
    assert rows[("1", 60, "A", "T")] == {"AC": 4, "XRF": None, "XGF": None, "INDEL": False,
                                         "END": None}
    second = rows[("1", 105, "TAAACCCTAAA", "TAACCCTAAA")]  # ALT 2 of 2
    assert second["XRF"] == [1e6, 5e5] and second["XGF"] == [1e6, 5e5, 9e9]
    assert second["INDEL"] is True and second["AC"] == 2


@pytest.mark.integration
def test_ingest_info__encrypted_with_the_sites_key(
        split_store: tuple[Store, dict], bao_server: DevServer) -> None:
    """A token that may decrypt only the sites and footer keys reads the INFO columns (so they
    are under the sites key, not the genotypes key), and their values are not in plaintext."""
    store, _ = split_store
    keys = store.manifest("norm").keys
    root = bao_server.client()
    policy = f"info-sites-only-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_acl_policy(policy, "".join(
        f'path "transit/decrypt/{keys[c]}" {{\n  capabilities = ["update"]\n}}\n'
        for c in ("sites", "footer")))
    token = root.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"]
    reader = DatasetReader(store, "norm", Keyring(bao_server.client(token), "norm"))
    cols = ("pos", fmt.info_column("ISTR"), fmt.info_column("XGS"))
    sites = pa.concat_tables([b.sites for b in reader.blocks(site_columns=cols,
                                                             genotypes=False)])
    assert "SomeString" in sites.column(fmt.info_column("ISTR")).to_pylist()
    for p in store.dataset_dir("norm").rglob("*.parquet"):
        data = p.read_bytes()
        assert b"SomeString" not in data and b"info_ISTR" not in data, p


def _edited(tmp: Path, src: Path, edit: Callable[[list[str]], None], name: str) -> Path:
    opener: Any = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fh:
        lines = fh.read().split("\n")
    edit(lines)
    out = tmp / name
    out.write_text("\n".join(lines))
    return out


def _set_info(lines: list[str], line_no: int, key: str, value: str | None) -> None:
    """Give INFO ``key`` of 1-based line ``line_no`` the text ``value`` (None: the bare key)."""
    cols = lines[line_no - 1].split("\t")
    entries = [e for e in cols[7].split(";") if e.split("=")[0] != key]
    entries.append(key if value is None else f"{key}={value}")
    cols[7] = ";".join(entries)
    lines[line_no - 1] = "\t".join(cols)


def _first_data_line(path: Path, n_alts: int | None = None) -> int:
    """The 1-based number of the first data line (with exactly ``n_alts`` ALT alleles)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        for i, line in enumerate(fh, start=1):
            if line.startswith("#"):
                continue
            if n_alts is None or line.split("\t")[4].count(",") + 1 == n_alts:
                return i
    raise AssertionError("no such line")


BAD_VALUES = [
    pytest.param("VQSLOD", "-3.x", "'-3.x' is not a Float", id="float"),
    pytest.param("AC", "1.5,0", "'1.5' is not an Integer", id="integer"),
    pytest.param("AC", "0", "needs 2 value(s), found 1", id="count_A"),
    pytest.param("AC", "99999999999999999999,0", "does not fit a 64-bit integer",
                 id="int_overflow"),
    pytest.param("NEGATIVE_TRAIN_SITE", "1", "a Flag takes no value", id="flag_with_value"),
    pytest.param("VQSLOD", None, "has no value", id="no_value"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("key", "value", "why"), BAD_VALUES)
def test_ingest_info__malformed_kept_value_refused_at_its_line(
        tmp_path: Path, ingest_file: Callable[..., IngestResult], store: Store,
        key: str, value: str | None, why: str) -> None:
    line = _first_data_line(CHRM, n_alts=2)
    path = _edited(tmp_path, CHRM, lambda ls: _set_info(ls, line, key, value), "bad.vcf")
    keep = ("AC", "VQSLOD", "NEGATIVE_TRAIN_SITE")
    with pytest.raises(InvalidInput) as err:
        ingest_file(path, "badinfo", info=keep)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert f"INFO/{key}" in msg and why in msg, msg
    assert not store.exists("badinfo")  # nothing visible


@pytest.mark.integration
def test_ingest_info__malformed_value_skipped_and_counted_with_skip_invalid(
        tmp_path: Path, ingest_file: Callable[..., IngestResult],
        reader: Callable[[str], DatasetReader]) -> None:
    line = _first_data_line(CHRM) + 1
    with gzip.open(CHRM, "rt") as fh:
        pos = int(fh.read().split("\n")[line - 1].split("\t")[1])
    path = _edited(tmp_path, CHRM, lambda ls: _set_info(ls, line, "VQSLOD", "high"), "s.vcf")
    res = ingest_file(path, "skipinfo", info=("VQSLOD",), skip_invalid=True)
    assert res.qc["skipped_records"] == {"bad_info": 1}
    sites = pa.concat_tables([b.sites for b in reader("skipinfo").blocks(
        site_columns=("pos", fmt.info_column("VQSLOD")), genotypes=False)])
    assert pos not in sites.column("pos").to_pylist()
    assert sites.column(fmt.info_column("VQSLOD")).null_count < sites.num_rows


@pytest.mark.integration
def test_ingest_info__malformed_value_of_an_unkept_field_is_ignored(
        tmp_path: Path, ingest_file: Callable[..., IngestResult]) -> None:
    line = _first_data_line(CHRM) + 1
    path = _edited(tmp_path, CHRM, lambda ls: _set_info(ls, line, "FS", "not-a-float"), "u.vcf")
    res = ingest_file(path, "unkept", info=("VQSLOD", "AC"))
    assert res.qc["skipped_records"] == {}
    with pytest.raises(InvalidInput, match="INFO/FS"):  # the same value in a kept field
        ingest_file(path, "kept", info=("FS",))


@pytest.mark.integration
def test_ingest_info__undeclared_field_is_refused_naming_it(
        ingest_file: Callable[..., IngestResult], store: Store) -> None:
    with pytest.raises(InvalidInput, match="INFO field 'AC_gnomad' is not declared"):
        ingest_file(CHRM, "undeclared", info=("VQSLOD", "AC_gnomad"))
    assert not store.exists("undeclared")


@pytest.mark.integration
def test_ingest_info__batches_with_other_info_sets_read_as_one_cohort(
        tmp_path: Path, ingest_file: Callable[..., IngestResult],
        reader: Callable[[str], DatasetReader]) -> None:
    """A dataset ingested without INFO keeps working; a later batch with INFO adds columns
    (null for the earlier batch's own rows, its values for shared variants); a batch that
    gives a field another type makes the dataset's INFO unreadable with a clear error."""
    ingest_file(CHRM, "mixed")
    rd = reader("mixed")
    assert rd.info_columns() == {}
    plain = [b.sites for b in rd.blocks(site_columns=("pos", "ref", "alt"), genotypes=False)]
    assert sum(t.num_rows for t in plain) > 0

    def rename_samples(lines: list[str]) -> None:
        i = next(j for j, x in enumerate(lines) if x.startswith("#CHROM"))
        cols = lines[i].split("\t")
        lines[i] = "\t".join([*cols[:9], *(f"other{c}" for c in cols[9:])])

    second = _edited(tmp_path, CHRM, rename_samples, "second.vcf")
    ingest_file(second, "mixed", info=("VQSLOD", "AC"))
    rd = reader("mixed")
    assert set(rd.info_columns()) == {fmt.info_column("VQSLOD"), fmt.info_column("AC")}
    sites = pa.concat_tables([b.sites for b in rd.blocks(
        site_columns=("pos", fmt.info_column("VQSLOD")), genotypes=False)])
    expect = subprocess.run(["bcftools", "query", "-f", "%INFO/VQSLOD\n", str(CHRM)],
                            check=True, capture_output=True, text=True).stdout.split()
    # multiallelic records are split: compare the set of values, and that none is null
    assert sites.column(fmt.info_column("VQSLOD")).null_count == 0
    assert set(sites.column(fmt.info_column("VQSLOD")).to_pylist()) == \
        {float(x) for x in expect}

    def retype(lines: list[str]) -> None:
        rename_samples(lines)
        lines[:] = [x.replace("ID=VQSLOD,Number=1,Type=Float", "ID=VQSLOD,Number=1,Type=String")
                    .replace("\tother", "\tthird") for x in lines]

    third = _edited(tmp_path, CHRM, retype, "third.vcf")
    ingest_file(third, "mixed", info=("VQSLOD",))
    with pytest.raises(ConfigError, match=r"disagree about INFO types.*VQSLOD"):
        reader("mixed").info_columns()


@pytest.mark.integration
def test_ingest_info__one_batch_with_two_info_schemas_is_refused(
        tmp_path: Path, store: Store, ingest_client: hvac.Client) -> None:
    """The writer fixes the INFO columns at the first rows: a later input of the same batch
    with another declaration is refused (nothing visible)."""
    from vault.store.writer import BatchWriter

    writer = BatchWriter(tmp_path, Keyring(ingest_client, "w"), 0, fmt.DEFAULT_BIN_SIZE)
    base = {"chrom": pa.array(["1"]), "pos": pa.array([5]), "id": pa.array(["."]),
            "ref": pa.array(["A"]), "alt": pa.array(["C"]),
            "qual": pa.array([None], pa.float32()), "filter": pa.array(["PASS"]),
            "allele_index": pa.array([1], pa.int16()), "n_alleles": pa.array([1], pa.int16()),
            "n_haploid": pa.array([0], pa.int32()), "n_half_call": pa.array([0], pa.int32())}
    Keyring(ingest_client, "w").ensure_keys()
    writer.add(0, {**base, "info_X": pa.array([1])}, np.zeros((1, 0), np.uint8))
    with pytest.raises(IngestError, match="X:int64, then X:double"):
        writer.add(0, {**base, "info_X": pa.array([1.5])}, np.zeros((1, 0), np.uint8))
    writer.abort()


# -- without Vault: option and header checks --------------------------------------------------


@pytest.mark.parametrize(("text", "why"), [
    ("chrom", "name of a fixed site column"),
    ("FILTER", "name of a fixed site column"),
    ("Genotypes", "name of a fixed site column"),
    ("GERP++_RS", "plain identifier"),
    ("1000G", "plain identifier"),
    ("AC,ac", "differ only in case"),
])
def test_parse_info_option__refuses_names_a_filter_could_not_use(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_info_option(text)


def test_parse_info_option__splits_strips_and_dedupes() -> None:
    assert parse_info_option(["AC, VQSLOD", "CSQ,AC", ""]) == ("AC", "VQSLOD", "CSQ")
    assert parse_info_option(None) == ()


@pytest.mark.parametrize(("line", "why"), [
    ('##INFO=<ID=X,Number=Q,Type=Integer,Description="d">', "Number must be"),
    ('##INFO=<ID=X,Number=1,Type=Int,Description="d">', "Type must be"),
    ('##INFO=<ID=X,Number=0,Type=Float,Description="d">', "Number=0 is only for"),
    ('##INFO=<ID=X,Number=1,Type=Float,Description="unterminated>', "malformed ##INFO"),
])
def test_info_declaration__malformed_kept_declaration_is_refused_at_its_line(
        line: str, why: str) -> None:
    lines = ["##fileformat=VCFv4.3", line,
             '##INFO=<ID=Y,Number=A,Type=Integer,Description="a, Number=3 \\"q\\"">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    header = parse_header(lines, "h.vcf")
    assert resolve(["Y"], header, "h.vcf").fields[0].number == "A"  # unkept X: not looked at
    with pytest.raises(InvalidInput, match=rf"h\.vcf:2: .*{why}"):
        resolve(["X"], header, "h.vcf")


def test_info_declaration__declared_twice_differently_is_refused() -> None:
    lines = ["##fileformat=VCFv4.3",
             '##INFO=<ID=X,Number=1,Type=Float,Description="d">',
             '##INFO=<ID=X,Number=A,Type=Float,Description="d">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    with pytest.raises(InvalidInput, match=r"h\.vcf:3: .*declared again"):
        resolve(["X"], parse_header(lines, "h.vcf"), "h.vcf")


def test_data_files_exist() -> None:
    for path, _, _ in CASES.values():
        assert path.exists()
    assert shutil.which("bcftools"), "bcftools is the oracle of these tests"


@pytest.mark.integration
def test_ingest_info__compaction_after_a_withdrawal_keeps_the_info_columns(
        store: Store, ingest_file: Callable[..., IngestResult],
        role_client: Callable[[str], hvac.Client], query_client: hvac.Client,
        reader: Callable[[str], DatasetReader]) -> None:
    from vault.keys import lifecycle

    ingest_file(CHRM, "compact", info=("VQSLOD", "MLEAC"))
    before = _rows(store, query_client, "compact", ["VQSLOD", "MLEAC"])
    sample = _header(CHRM).samples[0]
    lifecycle.withdraw(store, "compact", role_client("admin"), [sample])
    rep = lifecycle.compact(store, "compact", query_client, role_client("ingest"))
    assert rep.removed_samples == 1
    assert reader("compact").n_samples == len(_header(CHRM).samples) - 1
    assert _rows(store, query_client, "compact", ["VQSLOD", "MLEAC"]) == before
