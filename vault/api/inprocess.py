"""Serve the app with uvicorn in a thread on 127.0.0.1 (tests and benchmarks: real HTTP on
loopback without a second process)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from vault.keys.devserver import free_port


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


def server_options(trusted_proxies: str | None) -> dict[str, Any]:
    """uvicorn's options for the API (``genovault serve`` and in-process servers alike).
    ``X-Forwarded-For`` is believed only from ``trusted_proxies`` (settings'
    GENOVAULT_TRUSTED_PROXIES); uvicorn's own default believes it from 127.0.0.1, so any
    process on the host could name another client address in the audit trail and get a
    fresh anonymous rate limit per request."""
    opts: dict[str, Any] = {"log_level": "warning", "access_log": False,
                            "proxy_headers": bool(trusted_proxies)}
    if trusted_proxies:
        opts["forwarded_allow_ips"] = [p.strip() for p in trusted_proxies.split(",")
                                       if p.strip()]
    return opts


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, start_timeout_s: float = 30,
                    trusted_proxies: str | None = None) -> Iterator[str]:
    """``http://127.0.0.1:<free port>`` while the block runs; the server is stopped after."""
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                    **server_options(trusted_proxies)))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
