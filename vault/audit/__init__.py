"""The audit trail: an append-only, hash-chained JSON Lines log of every request.

Records who asked what, the decision and its reasons, the policy version and the disclosure
applied -- never genotypes, sample ids, pseudonyms or tokens. The chain head is anchored in
Vault (:class:`vault.keys.anchor.VaultKvAnchor`) so truncation is detectable. See
docs/audit.md.
"""

from vault.audit.anchor import Anchor, MemoryAnchor
from vault.audit.errors import AuditError, AuditTamperError, AuditUnanchored
from vault.audit.log import AuditEntry, AuditLog
from vault.audit.paths import audit_log_path
from vault.audit.reader import read
from vault.audit.verify import AuditVerifyReport, verify

__all__ = [
    "Anchor",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditTamperError",
    "AuditUnanchored",
    "AuditVerifyReport",
    "MemoryAnchor",
    "audit_log_path",
    "read",
    "verify",
]
