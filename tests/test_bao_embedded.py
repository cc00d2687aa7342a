"""The embedded OpenBao, for real: first start, 0600 init file, restart keeps keys, clear errors."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import hvac.exceptions
import pytest
from click.testing import CliRunner

from tests.support.baodev import free_port
from vault.cli import main
from vault.errors import ConfigError, EmbeddedVaultError, VaultDown, VaultNotConfigured
from vault.keys.client import connect, token_identity
from vault.keys.embedded import EmbeddedVault, bao_paths, read_embedded_credentials
from vault.keys.transit import create_transit_key
from vault.settings import load_settings

pytestmark = pytest.mark.integration

PLAINTEXT = base64.b64encode(b"data key").decode()


def free_port_pair() -> int:
    """A port p with p and p + 1 both free on 127.0.0.1 (API + cluster listener)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENOVAULT_HOME", str(tmp_path))
    monkeypatch.setenv("GENOVAULT_VAULT_PORT", str(free_port_pair()))
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    return tmp_path


@pytest.fixture
def vault(home: Path) -> Iterator[EmbeddedVault]:
    """An EmbeddedVault in a temp home; always stopped afterwards, even if a test fails."""
    ev = EmbeddedVault.from_settings(load_settings())
    try:
        yield ev
    finally:
        ev.down()
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(bao_paths(home).pid.read_text()), signal.SIGKILL)


def _secrets(home: Path) -> list[str]:
    data = json.loads(bao_paths(home).init.read_text())
    return [data["root_token"], *data["unseal_keys_b64"]]


def test_embedded_vault__first_up_initialises_unseals_bootstraps(vault, home):
    status = vault.up()
    assert status.running and status.initialized and status.sealed is False
    text = "\n".join(status.lines())
    assert "initialised a new vault" in text and "development default" in text
    assert "enabled Transit" in text
    for secret in _secrets(home):
        assert secret not in text
        assert secret not in repr(status) and secret not in repr(vault)
    addr, _ = read_embedded_credentials(home)
    assert addr == vault.addr == status.addr
    assert addr.startswith("http://127.0.0.1:")
    root = connect(load_settings())
    assert "root" in token_identity(root)["policies"]
    assert "transit/" in root.sys.list_mounted_secrets_engines()["data"]


def test_embedded_vault__init_file_is_0600_and_dir_0700(vault, home):
    vault.up()
    paths = bao_paths(home)
    assert stat.S_IMODE(paths.init.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.log.stat().st_mode) == 0o600
    log = paths.log.read_text()
    for secret in _secrets(home):
        assert secret not in log
    config = paths.config.read_text()
    assert "127.0.0.1" in config and "0.0.0.0" not in config


def test_embedded_vault__restart_keeps_keys(vault, home):
    vault.up()
    ingest = connect(load_settings(), "ingest")
    create_transit_key(ingest, "genovault.restart.genotypes")
    ciphertext = ingest.secrets.transit.encrypt_data(
        "genovault.restart.genotypes", plaintext=PLAINTEXT)["data"]["ciphertext"]
    assert vault.down() is True
    assert not vault.status().running
    with pytest.raises(VaultDown, match="cannot be reached"):
        connect(load_settings())

    status = vault.up()
    text = "\n".join(status.lines())
    assert "initialised" not in text  # unsealed from init.json, not re-initialised
    assert "bootstrap: nothing to change" in text
    plain = connect(load_settings(), "query").secrets.transit.decrypt_data(
        "genovault.restart.genotypes", ciphertext=ciphertext)
    assert plain["data"]["plaintext"] == PLAINTEXT


def test_embedded_vault__up_twice_is_a_no_op(vault):
    first = vault.up()
    second = vault.up()
    assert second.pid == first.pid
    assert any("already running" in m for m in second.messages)
    assert not any("initialised" in m or "bootstrap" in m for m in second.messages)


def test_embedded_vault__role_tokens_are_least_privilege(vault):
    vault.up()
    ingest = connect(load_settings(), "ingest")
    assert token_identity(ingest)["policies"] == ["genovault-ingest"]
    create_transit_key(ingest, "genovault.roles.genotypes")
    ciphertext = ingest.secrets.transit.encrypt_data(
        "genovault.roles.genotypes", plaintext=PLAINTEXT)["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.Forbidden):
        ingest.secrets.transit.decrypt_data("genovault.roles.genotypes", ciphertext=ciphertext)


def test_embedded_vault__port_in_use_is_a_clear_error(vault, home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", vault.port))
        s.listen()
        with pytest.raises(EmbeddedVaultError) as info:
            vault.up()
    msg = str(info.value)
    assert str(vault.port) in msg and "already in use" in msg and "GENOVAULT_VAULT_PORT" in msg
    assert not bao_paths(home).pid.exists()
    assert not bao_paths(home).init.exists()


def test_embedded_vault__server_exit_reports_log_tail(vault, home, monkeypatch, tmp_path_factory):
    fake = tmp_path_factory.mktemp("fakebao") / "bao"
    fake.write_text("#!/bin/sh\necho 'fake bao: unknown storage type (for the test)'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GENOVAULT_BAO_BINARY", str(fake))
    vault = EmbeddedVault.from_settings(load_settings())
    with pytest.raises(EmbeddedVaultError, match="exited during start-up") as info:
        vault.up()
    assert "fake bao: unknown storage type" in str(info.value)
    assert not bao_paths(home).pid.exists()


def test_embedded_vault__binary_not_executable_is_a_clear_error(vault, monkeypatch):
    monkeypatch.setenv("GENOVAULT_BAO_BINARY", "/nonexistent/bao")
    vault = EmbeddedVault.from_settings(load_settings())
    with pytest.raises(EmbeddedVaultError, match="GENOVAULT_BAO_BINARY"):
        vault.up()


def test_embedded_vault__wiped_storage_with_old_init_file_refuses(vault, home):
    vault.up()
    vault.down()
    paths = bao_paths(home)
    before = paths.init.read_bytes()
    for f in sorted(paths.data.rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() else f.unlink()
    with pytest.raises(EmbeddedVaultError, match="move that file away"):
        vault.up()
    assert paths.init.read_bytes() == before  # never overwritten
    assert not vault.status().running


def test_embedded_vault__stale_pid_file_is_not_trusted(vault, home):
    paths = bao_paths(home)
    paths.root.mkdir(parents=True)
    paths.pid.write_text(f"{os.getpid()}\n")  # our own pid: alive, but not bao
    assert vault.status().running is False
    assert vault.down() is False  # and it did not signal us


def test_connect__embedded_not_started_says_what_to_do(home):
    with pytest.raises(VaultNotConfigured) as info:
        connect(load_settings())
    assert "genovault vault up" in str(info.value)


def test_cli_vault__up_status_down(home):
    runner = CliRunner()
    try:
        up = runner.invoke(main, ["vault", "up"])
        assert up.exit_code == 0, up.output
        assert "started OpenBao" in up.output
        status = runner.invoke(main, ["vault", "status"])
        assert "running" in status.output and "unsealed" in status.output
        boot = runner.invoke(main, ["vault", "bootstrap"])
        assert boot.exit_code == 0 and "nothing to change" in boot.output
        for secret in _secrets(home):
            assert secret not in up.output + status.output + boot.output
    finally:
        down = runner.invoke(main, ["vault", "down"])
    assert down.exit_code == 0 and "stopped" in down.output
    status = runner.invoke(main, ["vault", "status"])
    assert "not running" in status.output


def test_cli_vault__bootstrap_without_vault_fails_clearly(home):
    result = CliRunner().invoke(main, ["vault", "bootstrap"])
    assert result.exit_code != 0
    assert result.output.startswith("error: ") and "genovault vault up" in result.output


def test_embedded_vault__new_home_is_0700_and_audit_log_is_written(tmp_path, monkeypatch):
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("GENOVAULT_HOME", str(home))
    monkeypatch.setenv("GENOVAULT_VAULT_PORT", str(free_port_pair()))
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    ev = EmbeddedVault.from_settings(load_settings())
    try:
        status = ev.up()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        paths = bao_paths(home)
        assert stat.S_IMODE(paths.data.stat().st_mode) == 0o700
        assert status.running
        assert "genovault/" in connect(load_settings()).sys.list_enabled_audit_devices()["data"]
        connect(load_settings(), "ingest").auth.token.lookup_self()
        assert stat.S_IMODE(paths.audit.stat().st_mode) == 0o600
        assert "auth/token/create/genovault-ingest" in paths.audit.read_text()
    finally:
        ev.down()


def test_embedded_vault__init_file_readable_by_others_is_refused(vault, home):
    vault.up()
    paths = bao_paths(home)
    paths.init.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        connect(load_settings())
    for secret in _secrets(home):
        assert secret not in str(info.value)
    paths.init.chmod(0o600)
    assert connect(load_settings()).is_authenticated()
