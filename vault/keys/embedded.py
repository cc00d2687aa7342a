"""The embedded OpenBao: one local ``bao server`` per GenoVault home, for development and demos.

Layout under ``<home>/bao/`` (directory mode 0700; see embedded_paths.py):

* ``config.hcl`` — persistent single-node PebbleDB storage in ``data/`` (OpenBao 2.7 has no
  ``file`` backend and no ``disable_mlock`` setting any more), a TCP listener on 127.0.0.1 only
  (API on the port, cluster traffic on port + 1), TLS disabled (loopback only), and the file
  audit device ``genovault/`` writing ``audit.log`` (OpenBao accepts audit devices only from its
  configuration, not through the API).
* ``init.json`` — the unseal key and root token, mode 0600 (refused if group/others can read
  it). **Development default**: one key share, threshold 1, kept on the same disk as the data.
  Anyone who can read this file can read every key. For production use an external
  Vault/OpenBao (``VAULT_ADDR``/``VAULT_TOKEN``) with real unseal (Shamir shares held by
  people, or auto-unseal via a cloud KMS/HSM).
* ``server.log``, ``audit.log`` (0600), ``bao.pid``, ``addr`` (``http://127.0.0.1:<port>``).

The port is the settings' ``vault_port`` (``$GENOVAULT_VAULT_PORT``, default 8250); port + 1 must be
free too (cluster listener). The process handling is in embedded_process.py.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from vault.errors import EmbeddedVaultError
from vault.keys.bootstrap import audit_stanza
from vault.keys.embedded_paths import (
    BaoPaths,
    bao_paths,
    find_bao_binary,
    make_private_dirs,
    read_embedded_credentials,
    read_init,
    write_init,
)
from vault.keys.embedded_process import (
    alive,
    check_port_free,
    log_tail,
    running_pid,
    spawn,
    stop_pid,
)
from vault.settings import Settings

__all__ = ["DEFAULT_PORT", "BaoPaths", "EmbeddedStatus", "EmbeddedVault", "bao_paths",
           "find_bao_binary", "read_embedded_credentials"]

DEFAULT_PORT = 8250
START_TIMEOUT_S = 30.0


@dataclass
class EmbeddedStatus:
    """What ``EmbeddedVault.status()`` found."""

    home: Path
    addr: str | None
    running: bool
    pid: int | None = None
    initialized: bool | None = None
    sealed: bool | None = None
    messages: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Plain-words summary."""
        if not self.running:
            return [f"embedded vault in {self.home}: not running", *self.messages]
        state = "sealed" if self.sealed else ("unsealed" if self.initialized else "not initialised")
        return [f"embedded vault in {self.home}: running (pid {self.pid}) at {self.addr}, {state}",
                *self.messages]


class EmbeddedVault:
    """A local OpenBao server with persistent file storage under ``<home>/bao``."""

    def __init__(self, home: Path, port: int = DEFAULT_PORT,
                 binary: Path | str | None = None, audit_path: Path | None = None) -> None:
        self.home = Path(home)
        self.paths = bao_paths(self.home)
        self.port = port
        self.binary = binary
        #: Where Vault's file audit device writes (default ``<home>/bao/audit.log``).
        self.audit_path = Path(audit_path) if audit_path else self.paths.audit

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedVault:
        return cls(settings.home, settings.vault_port, settings.bao_binary)

    def __repr__(self) -> str:
        return f"EmbeddedVault(home={str(self.home)!r}, port={self.port})"

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- public API --------------------------------------------------------------------------

    def up(self) -> EmbeddedStatus:
        """Start (or just report) the server; initialise, unseal and bootstrap it as needed."""
        self._make_dir()
        messages: list[str] = []
        pid = self._running_pid()
        if pid is not None:
            addr = self._recorded_addr() or self.addr
            client = hvac.Client(url=addr, timeout=5)
            messages.append(f"already running (pid {pid}) at {addr}")
            if self._seal_status(client).get("sealed", True):
                self._unseal(client)
                messages.append("unsealed it")
            return self._status(pid, addr, messages)

        binary = find_bao_binary(self.binary)
        self._check_port_free()
        self._write_config()
        pid = self._spawn(binary)
        client = hvac.Client(url=self.addr, timeout=5)
        try:
            seal = self._wait_listening(client, pid)
            if not seal.get("initialized", False):
                self._initialise(client)
                messages.append(
                    f"initialised a new vault (1 unseal key share, threshold 1: a development "
                    f"default) — unseal key and root token are in {self.paths.init} (mode 0600)"
                )
            elif not self.paths.init.exists():
                raise EmbeddedVaultError(
                    f"the vault storage in {self.paths.data} is initialised but "
                    f"{self.paths.init} is missing, so it cannot be unsealed: restore that file, "
                    f"or move {self.paths.data} away to start over (its keys are then lost)"
                )
            self._unseal(client)
            self._wait_active(client, pid)
            self.paths.addr.write_text(self.addr + "\n", encoding="utf-8")
            root = hvac.Client(url=self.addr, token=read_init(self.paths).root_token, timeout=10)
            from vault.keys.bootstrap import bootstrap

            report = bootstrap(root, audit_path=self.audit_path)
        except BaseException:
            self._stop_pid(pid)
            raise
        messages.insert(0, f"started OpenBao (pid {pid}) at {self.addr}, storage {self.paths.data}")
        messages.append(
            "bootstrap: " + ("; ".join(report.changed) if report.changed else "nothing to change")
        )
        messages.extend(f"WARNING: {w}" for w in report.warnings)
        return self._status(pid, self.addr, messages)

    def down(self) -> bool:
        """Stop the server if it runs (SIGTERM, wait); True if it was running."""
        pid = self._running_pid()
        if pid is None:
            self.paths.pid.unlink(missing_ok=True)
            return False
        self._stop_pid(pid)
        return True

    def status(self) -> EmbeddedStatus:
        """Whether the server runs, at which address, and whether it is initialised/unsealed."""
        pid = self._running_pid()
        addr = self._recorded_addr()
        if pid is None:
            return EmbeddedStatus(self.home, addr, running=False)
        return self._status(pid, addr or self.addr, [])

    # --- internals ---------------------------------------------------------------------------

    def _status(self, pid: int, addr: str, messages: list[str]) -> EmbeddedStatus:
        seal: dict[str, object] = {}
        with contextlib.suppress(EmbeddedVaultError):
            seal = self._seal_status(hvac.Client(url=addr, timeout=5))
        init_v, sealed_v = seal.get("initialized"), seal.get("sealed")
        return EmbeddedStatus(
            self.home, addr, running=True, pid=pid,
            initialized=init_v if isinstance(init_v, bool) else None,
            sealed=sealed_v if isinstance(sealed_v, bool) else None,
            messages=messages,
        )

    def _make_dir(self) -> None:
        make_private_dirs(self.paths)

    def _recorded_addr(self) -> str | None:
        try:
            return self.paths.addr.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _running_pid(self) -> int | None:
        return running_pid(self.paths)

    def _check_port_free(self) -> None:
        check_port_free(self.port)

    def _write_config(self) -> None:
        hcl = (
            "# Written by GenoVault (vault/keys/embedded.py); rewritten by every "
            "`genovault vault up`.\n"
            f'storage "pebbledb" {{\n  path = {json.dumps(str(self.paths.data))}\n}}\n\n'
            "# Loopback only, so TLS is disabled; never bind this to another interface.\n"
            f'listener "tcp" {{\n  address         = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.port + 1}"\n'
            "  tls_disable     = true\n}\n\n"
            f'cluster_addr  = "https://127.0.0.1:{self.port + 1}"\n'
            f'api_addr      = "{self.addr}"\n'
            "ui            = false\n\n"
            "# Every request and response, values HMAC-hashed (OpenBao: config-only).\n"
            + audit_stanza(self.audit_path)
        )
        self.paths.config.write_text(hcl, encoding="utf-8")

    def _spawn(self, binary: str) -> int:
        return spawn(binary, self.paths)

    def _wait_listening(self, client: hvac.Client, pid: int) -> dict[str, object]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if not alive(pid):
                raise EmbeddedVaultError(
                    f"bao server exited during start-up; last lines of {self.paths.log}:\n"
                    + self._log_tail()
                )
            try:
                status = client.sys.read_seal_status()
                if isinstance(status, dict):
                    return status
            except (requests.exceptions.RequestException, hvac.exceptions.VaultError):
                pass
            if time.monotonic() > deadline:
                raise EmbeddedVaultError(
                    f"bao server did not answer at {self.addr} within {START_TIMEOUT_S:.0f}s; "
                    f"last lines of {self.paths.log}:\n" + self._log_tail()
                )
            time.sleep(0.1)

    def _wait_active(self, client: hvac.Client, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            health = client.sys.read_health_status(method="GET")
            if isinstance(health, dict) and not health.get("sealed") and not health.get("standby"):
                return
            if not alive(pid):
                raise EmbeddedVaultError(
                    f"bao server exited after unseal; last lines of {self.paths.log}:\n"
                    + self._log_tail()
                )
            if time.monotonic() > deadline:
                raise EmbeddedVaultError(
                    f"bao server at {self.addr} did not become active within "
                    f"{START_TIMEOUT_S:.0f}s; see {self.paths.log}"
                )
            time.sleep(0.1)

    def _initialise(self, client: hvac.Client) -> None:
        if self.paths.init.exists():
            raise EmbeddedVaultError(
                f"the vault storage in {self.paths.data} is empty but {self.paths.init} exists "
                "(from an earlier vault whose data is gone): move that file away, then run "
                "`genovault vault up` again"
            )
        result = client.sys.initialize(secret_shares=1, secret_threshold=1)
        write_init(self.paths, result["keys_base64"], result["root_token"])

    def _unseal(self, client: hvac.Client) -> None:
        keys = read_init(self.paths).unseal_keys
        for key in keys:
            try:
                result = client.sys.submit_unseal_key(key=key)
            except hvac.exceptions.VaultError as e:
                raise EmbeddedVaultError(
                    f"the unseal key in {self.paths.init} was rejected ({type(e).__name__}): "
                    "the file does not belong to this vault's storage"
                ) from e
            if isinstance(result, dict) and not result.get("sealed", True):
                return
        raise EmbeddedVaultError(
            f"the vault is still sealed after using the keys in {self.paths.init}"
        )

    def _seal_status(self, client: hvac.Client) -> dict[str, object]:
        try:
            status = client.sys.read_seal_status()
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            raise EmbeddedVaultError(
                f"the embedded vault process runs but does not answer at {client.url}: "
                f"see {self.paths.log}, or `genovault vault down` and `up` again"
            ) from e
        return status if isinstance(status, dict) else {}

    def _stop_pid(self, pid: int) -> None:
        stop_pid(pid, self.paths)

    def _log_tail(self) -> str:
        return log_tail(self.paths)

