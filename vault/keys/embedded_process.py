"""The embedded OpenBao's process: spawn, find, stop, and read its log safely."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from vault.errors import EmbeddedVaultError
from vault.keys.embedded_paths import BaoPaths

STOP_TIMEOUT_S = 20.0
_LOG_TAIL_LINES = 15


def check_port_free(port: int) -> None:
    """Raise EmbeddedVaultError unless ``port`` (API) and ``port + 1`` (cluster) are free."""
    for p, use in ((port, "API"), (port + 1, "cluster")):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Like the server itself (Go sets SO_REUSEADDR): connections in TIME_WAIT
            # from a previous run must not count as "in use", a listener must.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError as e:
                raise EmbeddedVaultError(
                    f"port {p} on 127.0.0.1 (the embedded vault's {use} port) is already "
                    "in use, so the embedded vault cannot start: stop whatever listens there, "
                    "or choose another port with GENOVAULT_VAULT_PORT (it uses that port and "
                    "the next one)"
                ) from e


def spawn(binary: str, paths: BaoPaths) -> int:
    """Start ``bao server`` on ``paths.config`` in its own session; record and return its pid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    log_fd = os.open(paths.log, log_flags, 0o600)
    with os.fdopen(log_fd, "a", encoding="utf-8") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        log.write(f"\n--- genovault: starting bao server at {stamp}\n")
    try:
        pid = os.posix_spawn(
            binary,
            [binary, "server", f"-config={paths.config}"],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(paths.log), log_flags, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    except OSError as e:
        raise EmbeddedVaultError(f"could not start {binary}: {e.strerror}") from e
    paths.pid.write_text(f"{pid}\n", encoding="utf-8")
    return pid


def running_pid(paths: BaoPaths) -> int | None:
    """The recorded server pid if that process runs and is bao (a stale pid file is removed)."""
    try:
        pid = int(paths.pid.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None
    if not alive(pid) or not looks_like_bao(pid):
        paths.pid.unlink(missing_ok=True)
        return None
    return pid


def stop_pid(pid: int, paths: BaoPaths) -> None:
    """SIGTERM, wait, SIGKILL if needed; remove the pid file."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)
    paths.pid.unlink(missing_ok=True)


def log_tail(paths: BaoPaths) -> str:
    """The last lines of the server log, anything secret-looking redacted."""
    try:
        lines = paths.log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "  (no log)"
    return "\n".join("  " + line for line in redact(lines[-_LOG_TAIL_LINES:]))


def alive(pid: int) -> bool:
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


def looks_like_bao(pid: int) -> bool:
    """Guard against a stale pid file whose pid was reused (Linux: check the command line)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        args = cmdline.read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust the pid file
    except PermissionError:
        return False
    return bool(args) and os.path.basename(args[0]) in (b"bao", b"openbao") and b"server" in args


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def redact(lines: list[str]) -> Iterator[str]:
    """Log lines with anything that looks like a token or key replaced (belt and braces)."""
    for line in lines:
        lowered = line.lower()
        secretish = "root token" in lowered or "unseal key" in lowered
        if secretish or ("s." in line and "token" in lowered):
            yield "<line redacted>"
        else:
            yield line
