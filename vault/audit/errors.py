"""Errors of the audit trail."""

from __future__ import annotations

from vault.errors import GenoVaultError


class AuditError(GenoVaultError):
    """The audit trail could not be written or read. A request whose record could not be
    written must not be answered (the API turns this into a 503)."""


class AuditTamperError(AuditError):
    """The log's last record does not match the anchored chain head: the log was truncated,
    replaced or extended behind the writer's back. Appending stops until someone looks."""


class AuditUnanchored(AuditError):
    """The record is on disk but its anchor update was not confirmed (Vault refused it, did
    not answer in time, or answered too late): the answer must not be sent, and the record
    stays — the update may still reach Vault, so rolling the line back could leave the anchor
    ahead of the log. The next append anchors it and names it (``recovered``)."""
