"""Where the audit log lives."""

from __future__ import annotations

from pathlib import Path

from vault.settings import Settings


def audit_log_path(settings: Settings) -> Path:
    """``<home>/audit/audit.jsonl``."""
    return settings.home / "audit" / "audit.jsonl"
