"""Configure any Vault/OpenBao for GenoVault: Transit mount, least-privilege policies, auth roles.

``bootstrap(client)`` needs an admin (e.g. root) token and is idempotent: it reads what exists,
writes only what differs, and its report says what it changed.

Capabilities were checked against OpenBao 2.7.2 (see tests/test_bootstrap.py):

* Transit has no existence check on ``transit/keys/<name>``: creating a key there is an
  ``update``, and ``update`` on ``transit/keys/genovault.*`` would also allow
  ``transit/keys/<name>/rotate`` (a glob cannot exclude a suffix, and a more specific
  ``+/rotate`` deny loses to the earlier-wildcard rule). So the ingest role creates its keys
  through Transit's encrypt-upsert instead: ``create`` on ``transit/encrypt/genovault.*`` with
  ``allowed_parameters`` limited to ``plaintext`` and ``type = aes256-gcm96``. Upserted keys are
  never exportable, never allow plaintext backup, never derived/convergent.
* ``transit/encrypt/<k>``, ``transit/decrypt/<k>``, ``transit/hmac/<k>``, ``transit/rewrap/<k>``
  on an existing key need ``update``; encrypt on a missing key needs ``create`` (and then
  creates it: any ingest encrypt on a new ``genovault.*`` name creates an aes256-gcm96 key).
* The ingest role may not send ``batch_input`` to encrypt (its items' ``context`` would let an
  upsert create a derived key); hmac accepts ``input`` or ``batch_input``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import ConfigError
from vault.ids import check_dataset_id
from vault.keys.errors import map_error
from vault.keys.names import APPROLE_MOUNT, ROLES, TRANSIT_MOUNT
from vault.keys.registry import REGISTRY_MOUNT

#: Token roles: the longest a minted role token may live (seconds); mint_role_token asks for less.
TOKEN_ROLE_EXPLICIT_MAX_TTL_S = 24 * 3600
#: AppRole (pipelines): token lifetime, renewable up to max; secret ids expire after 30 days.
APPROLE_TOKEN_TTL_S = 3600
APPROLE_TOKEN_MAX_TTL_S = 4 * 3600
APPROLE_SECRET_ID_TTL_S = 30 * 24 * 3600

INGEST_POLICY = """\
# GenoVault ingest: add data, never read it back.
# Keys are created through encrypt-upsert (create), restricted to non-exportable aes256-gcm96.
# No access to transit/keys/* at all: no rotate, no config, no read, no delete.
path "transit/encrypt/genovault.*" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "plaintext" = []
    "type"      = ["aes256-gcm96"]
  }
}

# Register the batch's pseudonyms: create only (an existing entry -> 403 = duplicate sample),
# delete to release a failed ingest's entries; never read or list (see vault/keys/registry.py).
path "genovault-registry/*" {
  capabilities = ["create", "delete"]
}

# Pseudonymise sample ids with transit/hmac/genovault.<dataset>.pseudonym (single or batch),
# always with version 1 of the key so a sample keeps its pseudonym after a key rotation.
path "transit/hmac/genovault.*" {
  capabilities = ["update"]
  allowed_parameters = {
    "input"       = []
    "batch_input" = []
    "algorithm"   = ["sha2-256"]
    "key_version" = ["1"]
  }
}
"""

ADMIN_POLICY = """\
# GenoVault admin: create, read, rotate, configure, trim, delete and list keys; rewrap.
# No decrypt, no encrypt, no export; keys can never be made exportable or backed up in plaintext.
path "transit/keys/genovault.*" {
  capabilities = ["create", "read", "update", "delete", "list"]
  denied_parameters = {
    "exportable"             = []
    "allow_plaintext_backup" = []
  }
}

path "transit/keys" {
  capabilities = ["list"]
}

path "transit/rewrap/genovault.*" {
  capabilities = ["update"]
}
"""

_POLICY_NAME_RE = re.compile(r"^genovault-query-[a-z0-9][a-z0-9_-]{0,62}$")


def query_policy_hcl(datasets: list[str] | None) -> str:
    """HCL of a query policy: decrypt for the named datasets only, or for all if ``None``."""
    header = "# GenoVault query: unwrap data keys (transit/decrypt) only; no encrypt, no admin.\n"
    if datasets is None:
        globs = ["genovault.*"]
    else:
        if not datasets:
            raise ConfigError("a scoped query policy needs at least one dataset id")
        # "genovault.<ds>." ends with a dot and dataset ids never contain dots, so dataset "a"
        # never matches keys of dataset "a-b".
        globs = [f"genovault.{check_dataset_id(ds)}.*" for ds in sorted(set(datasets))]
    blocks = [f'path "transit/decrypt/{g}" {{\n  capabilities = ["update"]\n}}\n' for g in globs]
    return header + "\n".join(blocks)


QUERY_POLICY = query_policy_hcl(None)

POLICIES: dict[str, str] = {
    "genovault-ingest": INGEST_POLICY,
    "genovault-query": QUERY_POLICY,
    "genovault-admin": ADMIN_POLICY,
}


@dataclass
class BootstrapReport:
    """What bootstrap found and changed; ``changed`` is empty when nothing had to be written."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.changed)

    def lines(self) -> list[str]:
        """Plain-words summary, one line per item."""
        if not self.changed:
            return ["nothing to change: Vault is already bootstrapped for GenoVault", *(
                f"  unchanged: {u}" for u in self.unchanged)]
        return [f"changed: {c}" for c in self.changed] + [f"unchanged: {u}" for u in self.unchanged]


def bootstrap(client: hvac.Client) -> BootstrapReport:
    """Mount Transit and AppRole, write GenoVault's policies and auth roles; idempotent."""
    report = BootstrapReport()
    try:
        _ensure_transit(client, report)
        _ensure_registry(client, report)
        for name, hcl in POLICIES.items():
            _ensure_policy(client, name, hcl, report)
        for role in ROLES:
            _ensure_token_role(client, role, report)
        _ensure_approle_mount(client, report)
        for role in ROLES:
            _ensure_approle_role(client, role, report)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(
            e, "bootstrap", addr=client.url,
            advice="bootstrap needs an admin token (root, or one allowed sys/mounts, sys/auth, "
                   "sys/policies/acl, auth/token/roles, auth/approle/role)") from e
    return report


def write_query_policy(client: hvac.Client, name: str, datasets: list[str]) -> bool:
    """Write policy ``name`` allowing transit/decrypt for ``datasets`` only; True if it changed.

    ``name`` must look like ``genovault-query-<something>`` so scoped policies are easy to audit.
    """
    if not _POLICY_NAME_RE.match(name):
        raise ConfigError(
            f"invalid query policy name {name!r}: "
            "use 'genovault-query-<name>' with a-z, 0-9, '_', '-'"
        )
    report = BootstrapReport()
    try:
        _ensure_policy(client, name, query_policy_hcl(datasets), report)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"writing policy {name}", addr=client.url) from e
    return report.changed_anything


def mint_role_token(client: hvac.Client, role: str, ttl: str = "1h") -> str:
    """Create an orphan token of GenoVault role ``role`` via token role ``genovault-<role>``.

    The caller's token must be allowed ``auth/token/create/genovault-<role>`` (root or admin).
    The returned string is a secret: never log or print it.
    """
    if role not in ROLES:
        raise ConfigError(f"unknown Vault role {role!r}: use one of {', '.join(ROLES)}")
    try:
        resp = client.auth.token.create(
            role_name=f"genovault-{role}", policies=[f"genovault-{role}"], ttl=ttl,
            display_name=f"genovault-{role}",
        )
    except hvac.exceptions.InvalidRequest as e:
        raise ConfigError(
            f"Vault at {client.url} refused to mint a {role} token: "
            "has it been bootstrapped? run `genovault vault bootstrap`"
        ) from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"minting a {role} token", addr=client.url,
                        advice=f"the token needs auth/token/create/genovault-{role}") from e
    token: str = resp["auth"]["client_token"]
    return token


# --- the idempotent steps --------------------------------------------------------------------


def _ensure_transit(client: hvac.Client, report: BootstrapReport) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    existing = mounts.get(f"{TRANSIT_MOUNT}/")
    if existing is None:
        client.sys.enable_secrets_engine(
            "transit", path=TRANSIT_MOUNT, description="GenoVault key-encryption keys"
        )
        report.changed.append(f"enabled Transit secrets engine at {TRANSIT_MOUNT}/")
    elif existing.get("type") != "transit":
        raise ConfigError(
            f"{TRANSIT_MOUNT}/ is mounted as {existing.get('type')!r}, not transit: "
            "unmount it or use another Vault"
        )
    else:
        report.unchanged.append(f"Transit at {TRANSIT_MOUNT}/")


def _ensure_registry(client: hvac.Client, report: BootstrapReport) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    existing = mounts.get(f"{REGISTRY_MOUNT}/")
    if existing is None:
        client.sys.enable_secrets_engine(
            "kv", path=REGISTRY_MOUNT, options={"version": "1"},
            description="GenoVault sample registry (pseudonyms; create-only for pipelines)")
        report.changed.append(f"enabled the sample registry (KV v1) at {REGISTRY_MOUNT}/")
    elif existing.get("type") != "kv" or (existing.get("options") or {}).get("version") == "2":
        raise ConfigError(
            f"{REGISTRY_MOUNT}/ is mounted as {existing.get('type')!r} (options "
            f"{existing.get('options')}), not KV version 1: unmount it or use another Vault")
    else:
        report.unchanged.append(f"sample registry at {REGISTRY_MOUNT}/")


def _ensure_policy(client: hvac.Client, name: str, hcl: str, report: BootstrapReport) -> None:
    try:
        current = client.sys.read_acl_policy(name)["data"]["policy"]
    except hvac.exceptions.InvalidPath:
        current = None
    if current == hcl:
        report.unchanged.append(f"policy {name}")
        return
    client.sys.create_or_update_acl_policy(name, hcl)
    report.changed.append(f"{'wrote' if current is None else 'updated'} policy {name}")


def _token_role_spec(role: str) -> dict[str, Any]:
    return {
        "allowed_policies": [f"genovault-{role}"],
        "orphan": True,
        "renewable": True,
        "token_explicit_max_ttl": TOKEN_ROLE_EXPLICIT_MAX_TTL_S,
    }


def _ensure_token_role(client: hvac.Client, role: str, report: BootstrapReport) -> None:
    name = f"genovault-{role}"
    want = _token_role_spec(role)
    try:
        have = client.auth.token.read_role(name)["data"]
    except hvac.exceptions.InvalidPath:
        have = None
    if have is not None and _matches(have, want):
        report.unchanged.append(f"token role {name}")
        return
    client.auth.token.create_or_update_role(name, **want)
    report.changed.append(f"{'created' if have is None else 'updated'} token role {name}")


def _ensure_approle_mount(client: hvac.Client, report: BootstrapReport) -> None:
    methods = client.sys.list_auth_methods()["data"]
    existing = methods.get(f"{APPROLE_MOUNT}/")
    if existing is None:
        client.sys.enable_auth_method(
            "approle", path=APPROLE_MOUNT, description="GenoVault pipelines"
        )
        report.changed.append(f"enabled AppRole auth at {APPROLE_MOUNT}/")
    elif existing.get("type") != "approle":
        raise ConfigError(
            f"auth/{APPROLE_MOUNT}/ is mounted as {existing.get('type')!r}, not approle: "
            "disable it or use another Vault"
        )
    else:
        report.unchanged.append(f"AppRole auth at {APPROLE_MOUNT}/")


def _approle_spec(role: str) -> dict[str, Any]:
    return {
        "token_policies": [f"genovault-{role}"],
        "token_ttl": APPROLE_TOKEN_TTL_S,
        "token_max_ttl": APPROLE_TOKEN_MAX_TTL_S,
        "secret_id_ttl": APPROLE_SECRET_ID_TTL_S,
        "bind_secret_id": True,
        "token_type": "service",
    }


def _ensure_approle_role(client: hvac.Client, role: str, report: BootstrapReport) -> None:
    name = f"genovault-{role}"
    want = _approle_spec(role)
    try:
        have = client.auth.approle.read_role(name, mount_point=APPROLE_MOUNT)["data"]
    except hvac.exceptions.InvalidPath:
        have = None
    if have is not None and _matches(have, want):
        report.unchanged.append(f"AppRole role {name}")
        return
    client.auth.approle.create_or_update_approle(name, mount_point=APPROLE_MOUNT, **want)
    report.changed.append(f"{'created' if have is None else 'updated'} AppRole role {name}")


def _matches(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """True if every wanted field has the wanted value (lists compared as sets)."""
    for key, value in want.items():
        got = have.get(key)
        if isinstance(value, list):
            if sorted(got or []) != sorted(value):
                return False
        elif got != value:
            return False
    return True
