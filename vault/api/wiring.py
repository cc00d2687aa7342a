"""Build the API's services from settings: the service's own Vault identity, the policy,
the audit trail, the query service.

The service authenticates to Vault as AppRole ``genovault-service`` (decrypt for the query
service, the audit anchor) — never with a caller's token. With an external Vault the role id
and secret id come from ``GENOVAULT_SERVICE_ROLE_ID`` / ``GENOVAULT_SERVICE_SECRET_ID``; with
the embedded development vault they are fetched with its root token at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vault.api.auth import TOKEN_CACHE_TTL_S, Credentials, TokenAuthenticator
from vault.api.deps import Services
from vault.api.guard import Guard
from vault.audit import AuditLog
from vault.audit.paths import audit_log_path
from vault.errors import ConfigError
from vault.keys import auth as vauth
from vault.keys import client as vclient
from vault.keys.anchor import VaultKvAnchor
from vault.policy import PolicyStore
from vault.query.service import QueryService
from vault.settings import Settings
from vault.store.dataset import Store

READY_TIMEOUT_S = 1.5
#: an audit append waits at most this many Vault timeouts for its turn
AUDIT_TURN_TIMEOUTS = 3
DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[2] / "policies" / "access"


class ServiceIdentity:
    """The service's Vault client, logged in with AppRole.

    One client object for the process's lifetime: a fresh login replaces its token in place
    (every Keyring holding the client keeps working), at the latest after ``renew_s``.
    """

    def __init__(self, addr: str, login: Callable[[], str], renew_s: float = 20 * 60,
                 timeout_s: float = vclient.CONNECT_TIMEOUT_S) -> None:
        self.addr = addr
        self.timeout_s = timeout_s
        self._login = login
        self._renew_s = renew_s
        self._client: Any = None
        self._since = 0.0
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            now = time.monotonic()
            if self._client is None:
                self._client = vclient.client_for(self.addr, self._login(),
                                                  timeout_s=self.timeout_s)
                self._since = now
            elif now - self._since > self._renew_s:
                self._client.token = self._login()
                self._since = now
            return self._client

    def relogin(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.token = self._login()
                self._since = time.monotonic()


def service_identity(settings: Settings) -> ServiceIdentity:
    if settings.external_vault:
        assert settings.vault_addr is not None
        role_id = settings.service_role_id
        secret_id = settings.service_secret_id
        if not role_id or secret_id is None:
            raise ConfigError("the API needs its own Vault identity: set "
                              "GENOVAULT_SERVICE_ROLE_ID and GENOVAULT_SERVICE_SECRET_ID (AppRole "
                              "genovault-service; see docs/vault.md)")
        addr = settings.vault_addr

        def login() -> str:
            return vauth.approle_login(addr, role_id, secret_id.get_secret_value(),
                                       timeout_s=settings.vault_timeout_s)

        return ServiceIdentity(addr, login, timeout_s=settings.vault_timeout_s)
    root = vclient.connect(settings)
    addr = root.url

    def login_embedded() -> str:
        rid, sid = vauth.approle_credentials(vclient.connect(settings), "service")
        return vauth.approle_login(addr, rid, sid, timeout_s=settings.vault_timeout_s)

    return ServiceIdentity(addr, login_embedded, timeout_s=settings.vault_timeout_s)


def build_services(settings: Settings, *, policy_dir: Path | None = None,
                   identity: ServiceIdentity | None = None, cache_bytes: int | None = None,
                   token_ttl_s: float = TOKEN_CACHE_TTL_S) -> Services:
    identity = identity or service_identity(settings)
    store = Store(settings.store_root)
    log = logging.getLogger("genovault.api")

    def bad_policy(exc: Exception) -> None:
        log.error("policy reload failed; the previous policy stays in force",
                  extra={"fields": {"error": str(exc)[:500]}})

    policies = PolicyStore(policy_dir or settings.policy_dir or DEFAULT_POLICY_DIR).watch(
        on_error=bad_policy)
    anchor = VaultKvAnchor(identity.client())
    # a slow Vault must not queue every request behind the audit lock: past three Vault
    # timeouts an append gives up (503, nothing answered) instead of waiting its turn for as
    # long as Vault is slow (one Vault timeout proved too short on an overloaded machine)
    audit = AuditLog(audit_log_path(settings), anchor,
                     lock_timeout_s=AUDIT_TURN_TIMEOUTS * settings.vault_timeout_s)
    addr = identity.addr

    def lookup(token: str) -> dict[str, Any]:
        return vauth.lookup_token(addr, token, timeout_s=settings.vault_timeout_s)

    from vault.privacy.ledger import Ledger, ledger_path
    from vault.privacy.recovery import refund_unanswered, sole_server_lock

    ledger = Ledger(ledger_path(settings.home))
    credentials = Credentials(TokenAuthenticator(lookup, ttl_s=token_ttl_s).principal,
                              lambda: guard.policies.current().passports)
    guard = Guard(credentials, policies, audit, ledger=ledger)
    # the only API of this home: charges of answers a crash kept from leaving are refunded
    guard.serving_lock = sole_server_lock(ledger)
    if guard.serving_lock is None:
        log.warning("another API process serves this home: budget recovery skipped")
    else:
        refunds = refund_unanswered(ledger, audit.path)
        if refunds:
            log.warning("refunded the budget charges of answers that were never sent (the "
                        "service stopped before their audit record)", extra={"fields": {
                            "answers": len(refunds),
                            "epsilon": round(sum(e for _, e in refunds), 9)}})

    def vault_client() -> Any:
        return identity.client()

    query = QueryService(store, vault_client,
                         cache_bytes if cache_bytes is not None else settings.cache_mb << 20)

    def ready() -> None:
        vclient.check_ready(vclient.probe_client(addr, timeout_s=READY_TIMEOUT_S),
                            source="readiness probe")

    return Services(settings=settings, store=store, query=query, guard=guard,
                    vault_ready=ready)
