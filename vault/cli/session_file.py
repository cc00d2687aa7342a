"""Where the CLI keeps a researcher's Vault token after ``genovault login`` (mode 0600)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

from vault.errors import ConfigError
from vault.settings import Settings


def session_path(settings: Settings) -> Path:
    return settings.home / "session.json"


def save(settings: Settings, addr: str, username: str, token: str) -> Path:
    path = session_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"vault_addr": addr, "username": username, "token": token}, fh)
    os.replace(tmp, path)
    return path


def load(settings: Settings) -> dict[str, str] | None:
    path = session_path(settings)
    if not path.exists():
        return None
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    if mode & 0o077 or path.is_symlink():
        raise ConfigError(f"{path} is readable by others (mode {mode:o}) or a link; it holds a "
                          f"token: remove it and log in again")
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def remove(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        session_path(settings).unlink()


def caller_token(settings: Settings) -> str:
    """The caller's token: VAULT_TOKEN if set, else the one ``genovault login`` saved."""
    if settings.vault_token is not None:
        return settings.vault_token.get_secret_value()
    saved = load(settings)
    if saved is None:
        raise ConfigError("not logged in: run `genovault login --username NAME` (or set "
                          "VAULT_TOKEN)")
    return saved["token"]
