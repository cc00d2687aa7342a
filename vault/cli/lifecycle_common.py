"""Shared by the lifecycle command groups: the audit recorder of a lifecycle command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vault.keys.client import VaultClient
from vault.settings import Settings


def audit_recorder(settings: Settings, client: VaultClient) -> Callable[[dict[str, Any]], None]:
    """``append`` of the audit log (vault/audit), anchored in Vault with ``client``'s token
    (the admin policy may write the chain head)."""
    from vault.audit.log import AuditLog
    from vault.audit.paths import audit_log_path
    from vault.keys.anchor import VaultKvAnchor

    log = AuditLog(audit_log_path(settings), VaultKvAnchor(client))

    def record(payload: dict[str, Any]) -> None:
        log.append(payload)

    return record
