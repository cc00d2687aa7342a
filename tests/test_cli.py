"""The genovault command line, end to end against a real OpenBao (role tokens via env)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.baodev import DevServer
from vault.cli import main
from vault.keys.bootstrap import mint_role_token

DATA = Path(__file__).parent / "data" / "vcf"
DEMO = Path(__file__).parents[1] / "vault" / "sample_data"


@pytest.fixture
def env(tmp_path: Path, bao_server: DevServer, bootstrapped: object) -> Callable[[str], dict]:
    """Environment for a CLI call holding a fresh token of ``role``."""

    def make(role: str) -> dict[str, str]:
        return {"VAULT_ADDR": bao_server.addr,
                "VAULT_TOKEN": mint_role_token(bao_server.client(), role, ttl="10m"),
                "GENOVAULT_STORE": str(tmp_path / "store"),
                "GENOVAULT_HOME": str(tmp_path / "home")}

    return make


@pytest.mark.integration
def test_cli__ingest_show_list_verify(env: Callable[[str], dict]) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["ingest", str(DEMO / "demo_cohort.vcf.gz"), "-d", "demo",
                             "--samples", str(DEMO / "demo_cohort_samples.tsv")],
                      env=env("ingest"))
    assert r.exit_code == 0, r.output
    assert "as batch b0001" in r.output
    assert "population: pop1 n=100" in r.output
    ingest_token = env("ingest")["VAULT_TOKEN"]
    assert ingest_token not in r.output
    r = runner.invoke(main, ["datasets", "list"], env=env("query"))
    assert r.exit_code == 0 and r.output.startswith("demo\t300 samples\t1 batch(es)")
    r = runner.invoke(main, ["datasets", "show", "demo", "--json"], env=env("query"))
    manifest = json.loads(r.output)
    assert manifest["sample_count"] == 300
    # the identity that minted the ingest token (here the dev server's root token), not the
    # role token's own "token-genovault-ingest"
    assert manifest["batches"][0]["ingested_by"]["display_name"] == "token"
    assert manifest["binding"] == "transit-derived-v1"
    r = runner.invoke(main, ["datasets", "show", "demo"], env=env("query"))
    assert r.exit_code == 0 and "files bound to their place: in the cryptography" in r.output
    r = runner.invoke(main, ["datasets", "verify", "demo"], env=env("query"))
    assert r.exit_code == 0, r.output
    assert "OK" in r.output
    # verify needs decryption: the ingest role cannot do it, and says so
    r = runner.invoke(main, ["datasets", "verify", "demo"], env=env("ingest"))
    assert r.exit_code == 1
    assert "403" in r.output and "permission denied" in r.output
    # the same file again is refused, nothing changes
    r = runner.invoke(main, ["ingest", str(DEMO / "demo_cohort.vcf.gz"), "-d", "demo"],
                      env=env("ingest"))
    assert r.exit_code == 1 and "already ingested" in r.output


@pytest.mark.integration
def test_cli__bad_file_exit_code_and_message(env: Callable[[str], dict]) -> None:
    r = CliRunner().invoke(main, ["ingest", str(DATA / "hail__malformed.vcf"), "-d", "bad"],
                           env=env("ingest"))
    assert r.exit_code == 1
    assert r.output.startswith("error: ")
    assert "hail__malformed.vcf:54: malformed GT value" in r.output
    r = CliRunner().invoke(main, ["datasets", "show", "bad"], env=env("query"))
    assert r.exit_code == 1 and "no dataset 'bad'" in r.output


@pytest.mark.integration
def test_cli__skip_invalid_reports_reasons(env: Callable[[str], dict]) -> None:
    r = CliRunner().invoke(main, ["ingest", str(DATA / "bio2zarr__mixed_ploidy.vcf.gz"),
                                  "-d", "mp", "--skip-invalid", "--json"], env=env("ingest"))
    assert r.exit_code == 0, r.output
    qc = json.loads(r.output)["qc"]
    assert qc["skipped_records"] == {"ploidy_gt_2": 1}


@pytest.mark.integration
def test_cli__invalid_dataset_id(env: Callable[[str], dict]) -> None:
    r = CliRunner().invoke(main, ["ingest", str(DATA / "bio2zarr__sample.vcf.gz"), "-d",
                                  "../escape"], env=env("ingest"))
    assert r.exit_code == 2 and "invalid dataset id" in r.output


@pytest.mark.integration
def test_cli__progress_bar_on_request(env: Callable[[str], dict]) -> None:
    r = CliRunner().invoke(main, ["ingest", str(DEMO / "demo_cohort.vcf.gz"), "-d", "p",
                                  "--progress"], env=env("ingest"))
    assert r.exit_code == 0, r.output
    assert "ingest demo_cohort.vcf.gz" in r.stderr  # tqdm's description, on stderr
    assert "B/s" in r.stderr or "100%" in r.stderr
    r = CliRunner().invoke(main, ["ingest", str(DATA / "bio2zarr__sample.vcf.gz"), "-d", "q",
                                  "--no-progress"], env=env("ingest"))
    assert r.exit_code == 0 and r.stderr == ""


def test_cli__lazy_commands_resolve_to_themselves() -> None:
    """Every lazily imported root command is found under its own name and listed in --help."""
    from vault.cli.main import COMMANDS

    ctx = main.make_context("genovault", ["--help"], resilient_parsing=True)
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        assert cmd is not None and cmd.name == name, name
    assert main.get_command(ctx, "no-such-command") is None
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    listed = {line.split()[0] for line in r.output.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == set(COMMANDS)
    r = CliRunner().invoke(main, ["no-such-command"])
    assert r.exit_code == 2 and "error: No such command 'no-such-command'" in r.output


def test_cli__ingest_does_not_import_the_service() -> None:
    """`genovault ingest` starts without the API, the policy engine, the query path or the
    audit reader: their imports would be serial start-up time in front of every ingest."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from vault.cli import main\n"
            "try:\n"
            "    main(['ingest', '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "import vault.ingest.pipeline\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fastapi', 'starlette', 'uvicorn', 'duckdb', 'jsonschema', 'opendp', 'dask', "
            "'distributed') or m.startswith(('vault.api', 'vault.policy', 'vault.query', "
            "'vault.audit.verify', 'vault.beacon')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1]).stdout
    assert out.strip().splitlines()[-1] == "[]", out
