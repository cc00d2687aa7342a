"""Many small Vault requests over a few keep-alive HTTP/1.1 connections, pipelined.

The sample registry sends one request per sample (vault.keys.registry). Through hvac (requests)
each costs about 1.2 ms of client CPU, which an ingest pays on the cores that parse the file
(5,000 samples: ~6 s of CPU). Here each of a few connections keeps up to ``WINDOW`` requests in
flight and reads the answers in order: ~50 µs of client CPU per request, and Vault's own cost
per request is unchanged (measured in docs/ingest.md, "The sample registry").

Semantics are those of sending the requests one by one:

* every request that was sent gets its answer read, also after a failure or a stop (so the
  caller knows exactly which entries it created); requests not yet sent are skipped then;
* a connection the server closes after an answer that said ``Connection: close`` is reopened
  and the requests sent after that answer are sent again (an HTTP/1.1 server handles a
  connection's requests one after the other and reads none after it decided to close); any
  other break (reset, end of stream, timeout) leaves the in-flight answers unknown (None) and
  is the failure;
* a failure is an hvac/requests exception (``map_error`` turns it into a project error).

TLS follows the hvac client's settings (``verify``, ``cert``; requests' CA bundle variables).
When a proxy applies to Vault's address, requests go one by one through hvac instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.adapters
import hvac.exceptions
import hvac.utils
import requests

T = TypeVar("T")

#: connections per call and requests in flight per connection
CONNECTIONS = 2
WINDOW = 32
TIMEOUT_S = 10.0
#: reopened connections per call before giving up (a server that closes after every answer)
MAX_REOPEN = 1000

#: ``answer(index, status, body)`` turns one response into the item's answer, or raises the
#: hvac exception for a failed request
Answer = Callable[[int, int, bytes], T]


def raise_for_status(method: str, path: str, status: int, body: bytes) -> None:
    """Raise what hvac raises for an error status (hvac.utils.raise_for_error)."""
    if status < 400:
        if status >= 300:  # hvac would follow a redirect; a pipeline does not
            raise hvac.exceptions.UnexpectedError(
                f"unexpected redirect ({status}) from Vault for {method} {path}: point "
                "VAULT_ADDR at the active node")
        return
    errors = None
    with contextlib.suppress(ValueError, AttributeError):
        errors = json.loads(body or b"{}").get("errors")
    hvac.utils.raise_for_error(method, path, status, errors=errors,
                               text=body.decode("utf-8", "replace")[:200])


def send_all(client: hvac.Client, requests_: Sequence[tuple[str, str, bytes]],
             answer: Answer[T], stop: threading.Event | None = None,
             connections: int | None = None,
             window: int | None = None) -> tuple[list[T | None], BaseException | None]:
    """Send ``(method, path, json body)`` requests; return each one's answer and the first
    failure (None when all went through). After a failure or once ``stop`` is set, requests
    not yet sent are skipped (answer None), those in flight are still read. ``connections``
    and ``window`` default to CONNECTIONS and WINDOW."""
    connections = connections or CONNECTIONS
    window = window or WINDOW
    answers: list[T | None] = [None] * len(requests_)
    if not requests_:
        return answers, None
    if proxied(client):
        return _one_by_one(client, requests_, answer, stop, answers)
    run = _Run(client, requests_, answer, stop, answers)
    n = max(1, min(connections, len(requests_)))
    threads = [threading.Thread(target=run.connection, args=(list(range(k, len(requests_), n)),
                                                             window),
                                name="genovault-vault-pipe", daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, (run.failures[0] if run.failures else None)


def proxied(client: hvac.Client) -> bool:
    """Whether requests would send this client's traffic through a proxy (then raw
    connections must not be used)."""
    kwargs = getattr(client.adapter, "_kwargs", {}) or {}
    if kwargs.get("proxies"):
        return True
    parts = urlsplit(client.url)
    proxies = urllib.request.getproxies_environment()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and \
        not urllib.request.proxy_bypass(parts.hostname or "")


def _one_by_one(client: hvac.Client, requests_: Sequence[tuple[str, str, bytes]],
                answer: Answer[T], stop: threading.Event | None,
                answers: list[T | None]) -> tuple[list[T | None], BaseException | None]:
    for i, (method, path, body) in enumerate(requests_):
        if stop is not None and stop.is_set():
            break
        try:
            # the raw response, also from hvac's JSONAdapter (whose request() answers a dict
            # for a 200 with a JSON body)
            send = hvac.adapters.RawAdapter.request \
                if isinstance(client.adapter, hvac.adapters.RawAdapter) \
                else type(client.adapter).request
            resp = send(client.adapter, method, path, raise_exception=False,
                        data=body or None, headers={"Content-Type": "application/json"})
            answers[i] = answer(i, resp.status_code, resp.content)
        except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
            return answers, e
    return answers, None


def ssl_context(client: hvac.Client) -> ssl.SSLContext:
    """The TLS settings requests would use for this hvac client."""
    kwargs = getattr(client.adapter, "_kwargs", {}) or {}
    verify = kwargs.get("verify", True)
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if not verify:
                import certifi

                verify = certifi.where()
        ctx = (ssl.create_default_context(capath=verify) if os.path.isdir(verify)
               else ssl.create_default_context(cafile=verify))
    cert = kwargs.get("cert")
    if cert:
        if isinstance(cert, (tuple, list)):
            ctx.load_cert_chain(cert[0], cert[1])
        else:
            ctx.load_cert_chain(cert)
    return ctx


class _Run:
    def __init__(self, client: hvac.Client, requests_: Sequence[tuple[str, str, bytes]],
                 answer: Answer[Any], stop: threading.Event | None,
                 answers: list[Any]) -> None:
        parts = urlsplit(client.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.ctx = ssl_context(client) if self.https else None
        adapter = client.adapter
        head = [f"Host: {parts.netloc}", "X-Vault-Request: true",
                "Content-Type: application/json"]
        if adapter.token:
            head.append(f"X-Vault-Token: {adapter.token}")
        if getattr(adapter, "namespace", None):
            head.append(f"X-Vault-Namespace: {adapter.namespace}")
        self.head = "\r\n".join(head)
        self.requests = requests_
        self.answer = answer
        self.stop = stop
        self.answers = answers
        self.failures: list[BaseException] = []
        self.failed = threading.Event()
        self.reopened = 0
        self.lock = threading.Lock()

    def halted(self) -> bool:
        return self.failed.is_set() or (self.stop is not None and self.stop.is_set())

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.failures.append(exc)
        self.failed.set()

    def encode(self, i: int) -> bytes:
        method, path, body = self.requests[i]
        return (f"{method} {self.prefix}{path} HTTP/1.1\r\n{self.head}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def open(self) -> tuple[socket.socket, BinaryIO]:
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx is not None:
            sock = self.ctx.wrap_socket(sock, server_hostname=self.host)
        return sock, sock.makefile("rb")

    def connection(self, mine: list[int], window: int) -> None:
        """Send ``mine`` (request indices) over one connection, at most ``window`` in flight.

        A failed send only stops sending: the answers already on their way are still read,
        and an answer that says ``Connection: close`` reopens the connection."""
        try:
            sock, reader = self.open()
        except OSError as e:
            self.fail(requests.exceptions.ConnectionError(f"cannot connect to Vault: {e}"))
            return
        pending: deque[int] = deque()  # positions in ``mine`` sent and not yet answered
        nxt = 0
        broken = False  # a send failed: read what is in flight, then reopen
        try:
            while True:
                more = not self.halted() and nxt < len(mine)
                if more and not broken and len(pending) < window:
                    out = []
                    while nxt < len(mine) and len(pending) < window:
                        out.append(self.encode(mine[nxt]))
                        pending.append(nxt)
                        nxt += 1
                    try:
                        sock.sendall(b"".join(out))
                    except OSError:
                        broken = True
                if not pending:
                    if not (more and broken):
                        return
                    close = True  # every answer read: nothing is in doubt
                else:
                    status, body, close = _read_response(reader)
                    i = mine[pending.popleft()]
                    try:
                        self.answers[i] = self.answer(i, status, body)
                    except (requests.exceptions.RequestException,
                            hvac.exceptions.VaultError) as e:
                        self.fail(e)
                if close:
                    # the server read nothing after this answer: send the rest again
                    with self.lock:
                        self.reopened += 1
                        if self.reopened > MAX_REOPEN:
                            raise OSError("Vault closed the connection too often")
                    nxt = pending[0] if pending else nxt
                    pending.clear()
                    reader.close()
                    sock.close()
                    sock, reader = self.open()
                    broken = False
        except TimeoutError as e:
            self.fail(requests.exceptions.Timeout(f"Vault did not answer in time: {e}"))
        except (OSError, ValueError) as e:
            self.fail(requests.exceptions.ConnectionError(f"connection to Vault broke: {e}"))
        finally:
            reader.close()
            sock.close()


def _read_response(reader: BinaryIO) -> tuple[int, bytes, bool]:
    """(status, body, the server closes after it) of the next response on ``reader``.

    Raises ConnectionError when the connection ends before the response (whether the server
    handled the request is then unknown), ValueError for anything that is not HTTP/1.x."""
    line = reader.readline(65537)
    if not line:
        raise ConnectionError("Vault closed the connection without answering")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError("not an HTTP/1.x response")
    status = int(parts[1])
    length = -1
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for _ in range(1000):
        h = reader.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    else:
        raise ValueError("too many response headers")
    if chunked:
        chunks = bytearray()
        while True:
            size = int(reader.readline(1024).split(b";")[0], 16)
            if size == 0:
                while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks += reader.read(size)
            reader.readline(3)
        return status, bytes(chunks), close
    if length < 0:
        if status in (204, 304) or 100 <= status < 200:
            return status, b"", close
        return status, reader.read(), True  # ends with the connection
    body = reader.read(length)
    if len(body) != length:
        raise ValueError("truncated response")
    return status, body, close
