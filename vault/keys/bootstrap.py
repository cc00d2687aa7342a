"""Configure any Vault/OpenBao for GenoVault: mounts, least-privilege policies, auth roles.

``bootstrap(client)`` needs an admin (e.g. root) token and is idempotent: it reads what exists,
writes only what differs, and its report says what it changed. The policies are the files in
``policies/vault/`` (see vault/keys/acl.py and docs/vault.md).

Capabilities were checked against OpenBao 2.7.2 (see tests/test_bootstrap.py and
tests/test_keys_*.py):

* Transit has no existence check on ``transit/keys/<name>``: creating a key there is an
  ``update``, and ``update`` on ``transit/keys/genovault.*`` would also allow ``.../rotate``,
  ``.../config`` and ``.../import`` (bring-your-own-key). So nobody but root creates keys there:
  the ingest role creates its keys through Transit's encrypt-upsert (``create`` on
  ``transit/encrypt/genovault.<dataset>.*`` with ``allowed_parameters`` limited to
  ``plaintext``, ``context`` and ``type = aes256-gcm96``), and admins get explicit endpoints
  (``transit/keys/+/rotate`` ...). ``*`` is a glob only at the end of a path; ``+`` is one whole
  segment. Upserted keys are never exportable, never allow plaintext backup, never convergent,
  never imported; an upsert with a ``context`` makes a *derived* key, which is what a bound
  dataset (schema 6) needs, and Keyring.ensure_keys() checks exactly that (derived for a bound
  dataset's Parquet keys, not derived otherwise).
* ``transit/encrypt/<k>``, ``transit/decrypt/<k>``, ``transit/hmac/<k>``, ``transit/rewrap/<k>``
  on an existing key need ``update``; encrypt on a missing key needs ``create``.
* The ingest role may not send ``batch_input`` to encrypt (pyarrow wraps one key per call);
  hmac accepts ``input`` or ``batch_input``.
* OpenBao 2.x refuses to enable audit devices through the API ("use declarative,
  config-based audit device management"): the embedded vault declares its file device in its
  config file; for an external Vault, bootstrap tries the API and otherwise says what to add.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import ConfigError
from vault.keys.acl import (
    INGEST_POLICY_PREFIX,
    check_query_policy_name,
    ingest_policy_hcl,
    ingest_policy_name,
    query_policy_hcl,
    static_policies,
    with_token_self,
)
from vault.keys.anchor import ANCHOR_MAX_VERSIONS
from vault.keys.errors import map_error
from vault.keys.names import (
    ANCHOR_MOUNT,
    APPROLE_MOUNT,
    APPROLE_ROLES,
    AUDIT_DEVICE_PATH,
    AUDIT_MOUNT,
    LIFECYCLE_MOUNT,
    SIGNING_KEY,
    TOKEN_ROLES,
    TRANSIT_MOUNT,
    USERPASS_MOUNT,
    WORKER_TOKEN_MAX_TTL_S,
    WORKER_TOKEN_ROLES,
)
from vault.keys.registry import REGISTRY_MOUNT

__all__ = [
    "ADMIN_POLICY", "AUDITOR_POLICY", "DEFAULT_ROLE_TOKEN_TTL", "INGEST_POLICY", "POLICIES",
    "QUERY_POLICY", "SERVICE_POLICY", "BootstrapReport", "bootstrap", "ensure_ingest_policy",
    "query_policy_hcl", "write_query_policy",
]

#: Token roles: the longest a minted role token may live (seconds); mint_role_token asks for less.
TOKEN_ROLE_EXPLICIT_MAX_TTL_S = 24 * 3600
#: AppRole (pipelines): token lifetime, renewable up to max; secret ids expire after 30 days.
APPROLE_TOKEN_TTL_S = 3600
APPROLE_TOKEN_MAX_TTL_S = 4 * 3600
APPROLE_SECRET_ID_TTL_S = 30 * 24 * 3600

#: Static policies as bootstrap writes them (from policies/vault/*.hcl).
POLICIES: dict[str, str] = static_policies()
INGEST_POLICY = POLICIES["genovault-ingest"]
QUERY_POLICY = POLICIES["genovault-query"]
ADMIN_POLICY = POLICIES["genovault-admin"]
SERVICE_POLICY = POLICIES["genovault-service"]
AUDITOR_POLICY = POLICIES["genovault-auditor"]

#: Default lifetime of a minted role token: as short as one command.
DEFAULT_ROLE_TOKEN_TTL = "15m"  # noqa: S105 (a duration, not a secret)


@dataclass
class BootstrapReport:
    """What bootstrap found and changed; ``changed`` is empty when nothing had to be written.

    ``warnings`` name what bootstrap could not put in place (e.g. an audit device) and why.
    """

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.changed)

    def lines(self) -> list[str]:
        """Plain-words summary, one line per item."""
        warn = [f"WARNING: {w}" for w in self.warnings]
        if not self.changed:
            return ["nothing to change: Vault is already bootstrapped for GenoVault", *(
                f"  unchanged: {u}" for u in self.unchanged), *warn]
        return ([f"changed: {c}" for c in self.changed]
                + [f"unchanged: {u}" for u in self.unchanged] + warn)


def bootstrap(client: hvac.Client, *, audit_path: Path | str | None = None) -> BootstrapReport:
    """Mount Transit, the registry and audit-anchor KV mounts, AppRole and userpass; write
    GenoVault's policies and auth roles; make sure an audit device records every request.

    Audit: if Vault already has an audit device, it is kept (and named in the report). If it
    has none and ``audit_path`` is given, a file device ``genovault/`` writing there is enabled
    (OpenBao refuses this through the API: then the report's warning says what to add to the
    server configuration). With neither, the report warns that Vault records nothing.
    Idempotent.
    """
    report = BootstrapReport()
    try:
        _ensure_transit(client, report)
        _ensure_kv1(client, REGISTRY_MOUNT, report, what="the sample registry",
                    description="GenoVault sample registry (pseudonyms; create-only for "
                                "pipelines)")
        _ensure_kv2_anchors(client, report)
        _ensure_kv1(client, AUDIT_MOUNT, report, what="the legacy audit chain anchor",
                    description="GenoVault legacy audit chain anchor (read-only; anchors "
                                f"are in {ANCHOR_MOUNT}/)")
        _ensure_kv1(client, LIFECYCLE_MOUNT, report, what="the destruction requests (and "
                    "legacy manifest anchors)", description="GenoVault lifecycle: "
                    "destruction requests, legacy manifest version anchors (read-only)")
        _ensure_signing_key(client, report)
        for name, hcl in POLICIES.items():
            _ensure_policy(client, name, hcl, report)
        for role in (*TOKEN_ROLES, *WORKER_TOKEN_ROLES):
            _ensure_token_role(client, role, report)
        _ensure_auth_mount(client, APPROLE_MOUNT, "approle", "GenoVault pipelines and service",
                           report)
        _ensure_auth_mount(client, USERPASS_MOUNT, "userpass",
                           "GenoVault people (use OIDC/LDAP in production)", report)
        for role in APPROLE_ROLES:
            _ensure_approle_role(client, role, report)
        _ensure_audit_device(client, audit_path, report)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(
            e, "bootstrap", addr=client.url,
            advice="bootstrap needs an admin token (root, or one allowed sys/mounts, sys/auth, "
                   "sys/audit, sys/policies/acl, auth/token/roles, auth/approle/role)") from e
    return report


def write_query_policy(client: hvac.Client, name: str, datasets: list[str]) -> bool:
    """Write policy ``name`` allowing transit/decrypt for ``datasets`` only; True if it changed.

    ``name`` must look like ``genovault-query-<something>`` so scoped policies are easy to audit.
    """
    check_query_policy_name(name)
    report = BootstrapReport()
    try:
        _ensure_policy(client, name, query_policy_hcl(datasets), report)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"writing policy {name}", addr=client.url) from e
    return report.changed_anything


def ensure_ingest_policy(client: hvac.Client, dataset: str) -> str:
    """Write (if missing or different) ``genovault-ingest-<dataset>``; return its name.

    Needs a token allowed ``sys/policies/acl/genovault-ingest-*`` (root or a bootstrap admin).
    """
    name = ingest_policy_name(dataset)
    try:
        _ensure_policy(client, name, ingest_policy_hcl(dataset), BootstrapReport())
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"writing policy {name}", addr=client.url,
                        advice="writing a per-dataset ingest policy needs a token allowed "
                               "sys/policies/acl (root, or the bootstrap admin)") from e
    return name


def mint_role_token(client: hvac.Client, role: str, *, dataset: str | None = None,
                    ttl: str = DEFAULT_ROLE_TOKEN_TTL) -> str:
    """Create an orphan token of GenoVault role ``role`` via token role ``genovault-<role>``.

    The token has no ``default`` policy and lives ``ttl`` (default 15 minutes: one command).
    With ``dataset`` (ingest only) its one policy is ``genovault-ingest-<dataset>`` (written on
    demand), so it can neither add to nor probe any other dataset. Its metadata records who
    minted it (``minted_by``: the minting token's display name, ``minted_by_entity``: its
    entity id), which :func:`vault.keys.client.token_identity` reports as ``on_behalf_of``.

    The caller's token must be allowed ``auth/token/create/genovault-<role>`` (root or admin),
    and for ``dataset`` also ``sys/policies/acl``. The returned string is a secret: never log
    or print it.
    """
    if role not in TOKEN_ROLES:
        raise ConfigError(f"unknown Vault role {role!r}: use one of {', '.join(TOKEN_ROLES)}")
    if dataset is not None and role not in ("ingest", "query"):
        raise ConfigError(f"dataset-scoped tokens exist for the ingest and query roles only, "
                          f"not {role!r}")
    try:
        minter = client.auth.token.lookup_self()["data"]
        if dataset and role == "query":
            policy = f"genovault-query-{dataset}"
            # minted tokens carry no default policy: the token-self rules are added
            _ensure_policy(client, check_query_policy_name(policy),
                           with_token_self(query_policy_hcl([dataset])), BootstrapReport())
        else:
            policy = ensure_ingest_policy(client, dataset) if dataset else f"genovault-{role}"
        meta = {"minted_by": str(minter.get("display_name") or ""),
                "minted_by_entity": str(minter.get("entity_id") or ""),
                "genovault_role": role}
        if dataset:
            meta["dataset"] = dataset
        resp = client.auth.token.create(
            role_name=f"genovault-{role}", policies=[policy], ttl=ttl, no_default_policy=True,
            display_name=f"genovault-{role}", meta=meta,
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


def _ensure_signing_key(client: hvac.Client, report: BootstrapReport) -> None:
    """The ed25519 Transit key that signs manifests (never exportable, no plaintext backup)."""
    try:
        info = client.secrets.transit.read_key(name=SIGNING_KEY, mount_point=TRANSIT_MOUNT)["data"]
    except hvac.exceptions.InvalidPath:
        info = None
    if info is None:
        client.secrets.transit.create_key(name=SIGNING_KEY, key_type="ed25519",
                                          exportable=False, allow_plaintext_backup=False,
                                          mount_point=TRANSIT_MOUNT)
        report.changed.append(f"created the manifest signing key transit/keys/{SIGNING_KEY}")
    elif info.get("type") != "ed25519" or info.get("exportable") or info.get("imported_key"):
        raise ConfigError(f"transit/keys/{SIGNING_KEY} exists but is not a non-exportable "
                          "ed25519 key GenoVault made: delete it (root) and bootstrap again")
    else:
        report.unchanged.append(f"manifest signing key {SIGNING_KEY}")


def _ensure_kv1(client: hvac.Client, mount: str, report: BootstrapReport, *, what: str,
                description: str) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    existing = mounts.get(f"{mount}/")
    if existing is None:
        client.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"},
                                         description=description)
        report.changed.append(f"enabled {what} (KV v1) at {mount}/")
    elif existing.get("type") != "kv" or (existing.get("options") or {}).get("version") == "2":
        raise ConfigError(
            f"{mount}/ is mounted as {existing.get('type')!r} (options "
            f"{existing.get('options')}), not KV version 1: unmount it or use another Vault")
    else:
        report.unchanged.append(f"{what} at {mount}/")


#: The anchor mount's configuration: every write must carry check-and-set; old versions are
#: pruned beyond ANCHOR_MAX_VERSIONS (only the current one is needed).
ANCHOR_MOUNT_CONFIG = {"cas_required": True, "max_versions": ANCHOR_MAX_VERSIONS,
                       "delete_version_after": "0s"}


def _kv2_config(client: hvac.Client, mount: str, wait_s: float = 30.0) -> dict[str, Any]:
    """The KV v2 mount's configuration, once the mount answers: a newly enabled KV v2 mount
    refuses every request for a moment ("Upgrading from non-versioned to versioned data")."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            data: dict[str, Any] = client.adapter.get(f"/v1/{mount}/config")["data"]
            return data
        except hvac.exceptions.InvalidRequest as exc:
            if "Upgrading from non-versioned" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _ensure_kv2_anchors(client: hvac.Client, report: BootstrapReport) -> None:
    """The KV v2 mount of the anchors (vault/keys/anchor.py), with cas_required."""
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    existing = mounts.get(f"{ANCHOR_MOUNT}/")
    if existing is None:
        client.sys.enable_secrets_engine(
            "kv", path=ANCHOR_MOUNT, options={"version": "2"},
            description="GenoVault anchors: audit chain heads, manifest versions (KV "
                        "version = counter, check-and-set; nobody but root deletes)")
        report.changed.append(f"enabled the anchors (KV v2) at {ANCHOR_MOUNT}/")
    elif existing.get("type") != "kv" or (existing.get("options") or {}).get("version") != "2":
        raise ConfigError(
            f"{ANCHOR_MOUNT}/ is mounted as {existing.get('type')!r} (options "
            f"{existing.get('options')}), not KV version 2: unmount it or use another Vault")
    else:
        report.unchanged.append(f"the anchors (KV v2) at {ANCHOR_MOUNT}/")
    have = _kv2_config(client, ANCHOR_MOUNT)
    if any(have.get(k) != v for k, v in ANCHOR_MOUNT_CONFIG.items()
           if k != "delete_version_after") or have.get("delete_version_after") not in (
               "0s", 0, None):
        client.adapter.post(f"/v1/{ANCHOR_MOUNT}/config", json=ANCHOR_MOUNT_CONFIG)
        report.changed.append(f"configured {ANCHOR_MOUNT}/ (cas_required, max_versions "
                              f"{ANCHOR_MAX_VERSIONS})")


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
    if role in WORKER_TOKEN_ROLES:
        return _worker_token_role_spec(role)
    spec: dict[str, Any] = {
        "allowed_policies": [f"genovault-{role}"],
        "allowed_policies_glob": [f"{INGEST_POLICY_PREFIX}*"] if role == "ingest" else
        ["genovault-query-*"] if role == "query" else [],
        "orphan": True,
        # nothing in GenoVault renews a role token (a command mints one per run, services
        # log in again): renewable, a leaked one could be kept alive up to the explicit max
        "renewable": False,
        "token_no_default_policy": True,
        "token_explicit_max_ttl": TOKEN_ROLE_EXPLICIT_MAX_TTL_S,
    }
    return spec


def _worker_token_role_spec(role: str) -> dict[str, Any]:
    """A scale-out worker's token role (vault.keys.workers): Vault itself, not the minter,
    makes its tokens children of the minting token (``orphan`` false: revoked when it is),
    not renewable, at most WORKER_TOKEN_MAX_TTL_S, service tokens (they have an accessor),
    and with one of the dataset-scoped worker policies only: ``genovault-query-<dataset>``
    (decrypt one dataset's keys; never ``genovault-query``, all datasets) or
    ``genovault-ingest-<dataset>.encrypt`` (encrypt only; never a full ingest policy)."""
    glob = {"query-worker": "genovault-query-*",
            "ingest-worker": f"{INGEST_POLICY_PREFIX}*.encrypt"}[role]
    return {
        "allowed_policies": [],
        "allowed_policies_glob": [glob],
        "disallowed_policies": ["root", "default"],
        # no entity alias: a minter naming one would give the token that entity's identity
        # policies
        "allowed_entity_aliases": [],
        "orphan": False,
        "renewable": False,
        "token_no_default_policy": True,
        "token_explicit_max_ttl": WORKER_TOKEN_MAX_TTL_S[role],
        "token_period": 0,
        "token_type": "service",
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
    # hvac's create_or_update_role has no allowed_policies_glob: post the role directly.
    client.adapter.post(f"/v1/auth/token/roles/{name}", json=want)
    report.changed.append(f"{'created' if have is None else 'updated'} token role {name}")


def _ensure_auth_mount(client: hvac.Client, mount: str, kind: str, description: str,
                       report: BootstrapReport) -> None:
    methods = client.sys.list_auth_methods()["data"]
    existing = methods.get(f"{mount}/")
    if existing is None:
        client.sys.enable_auth_method(kind, path=mount, description=description)
        report.changed.append(f"enabled {kind} auth at {mount}/")
    elif existing.get("type") != kind:
        raise ConfigError(
            f"auth/{mount}/ is mounted as {existing.get('type')!r}, not {kind}: "
            "disable it or use another Vault"
        )
    else:
        report.unchanged.append(f"{kind} auth at {mount}/")


def _approle_spec(role: str) -> dict[str, Any]:
    return {
        "token_policies": [f"genovault-{role}"],
        "token_no_default_policy": True,
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


def audit_stanza(audit_path: Path | str) -> str:
    """The server-configuration block declaring GenoVault's file audit device."""
    return (f'audit "file" "{AUDIT_DEVICE_PATH}" {{\n'
            '  description = "GenoVault: every request, values HMAC-hashed"\n'
            f'  options {{\n    file_path = {json.dumps(str(audit_path))}\n    mode      = "0600"\n'
            '  }\n}\n')


def _ensure_audit_device(client: hvac.Client, audit_path: Path | str | None,
                         report: BootstrapReport) -> None:
    devices = client.sys.list_enabled_audit_devices()["data"]
    if devices:
        names = ", ".join(f"{p} ({d.get('type')})" for p, d in sorted(devices.items()))
        report.unchanged.append(f"audit device(s) {names}")
        return
    if audit_path is None:
        report.warnings.append(
            "this Vault has no audit device, so it records nobody's requests (HMACs, registry "
            "look-ups, decrypts): enable one (bootstrap --audit-path, or an `audit` stanza in "
            "the server configuration)")
        return
    try:
        client.sys.enable_audit_device("file", path=AUDIT_DEVICE_PATH,
                                       description="GenoVault: every request, values hashed",
                                       options={"file_path": str(audit_path), "mode": "0600"})
    except hvac.exceptions.InvalidRequest as e:
        if "declarative" not in str(e):
            raise
        report.warnings.append(
            "this OpenBao refuses to enable audit devices through the API; add this to its "
            "server configuration and restart (or SIGHUP) it:\n" + audit_stanza(audit_path))
        return
    report.changed.append(f"enabled the file audit device {AUDIT_DEVICE_PATH}/ -> {audit_path}")


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
