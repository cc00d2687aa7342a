"""A throw-away ``bao server -dev`` on loopback, for tests and benchmarks (never for real data).

The dev server keeps everything in memory and prints its root token; it is what the test suite
and the benchmarks start. Real deployments use the embedded server (embedded.py) or an external
Vault/OpenBao.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import requests

from vault.keys.embedded_paths import find_bao_binary


@dataclass
class DevServer:
    """A running dev OpenBao: ``addr`` and ``root_token`` (a per-run random secret)."""

    addr: str
    root_token: str = field(repr=False)
    unseal_key: str = field(repr=False)
    log: Path
    pid: int

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the dev server if the test process dies, so it can never leak."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def dev_server(log_dir: Path, timeout: float = 30.0,
               audit_path: Path | None = None) -> Iterator[DevServer]:
    """Run ``bao server -dev`` on a free loopback port until the block ends (always stopped).

    With ``audit_path``, the server declares GenoVault's file audit device writing there
    (OpenBao only accepts audit devices from its configuration file).
    """
    from vault.keys.bootstrap import audit_stanza

    port = free_port()
    token = "gv-test-" + secrets.token_urlsafe(24)
    log = log_dir / f"bao-dev-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    extra = []
    if audit_path is not None:
        config = log_dir / f"bao-dev-{port}-audit.hcl"
        config.write_text(audit_stanza(audit_path), encoding="utf-8")
        extra.append(f"-config={config}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [find_bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
             f"-dev-root-token-id={token}", *extra],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent,
        )
    try:
        addr = f"http://127.0.0.1:{port}"
        client = hvac.Client(url=addr, token=token, timeout=5)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bao dev server exited ({proc.returncode}); see {log}")
            with contextlib.suppress(requests.exceptions.RequestException):
                health = client.sys.read_health_status(method="GET")
                if isinstance(health, dict) and not health.get("sealed", True):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao dev server did not start within {timeout}s; see {log}")
            time.sleep(0.05)
        unseal_key = ""
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Unseal Key:"):
                unseal_key = line.split(":", 1)[1].strip()
        yield DevServer(addr=addr, root_token=token, unseal_key=unseal_key, log=log, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
