"""GenoVault's Vault ACL policies, read from the packaged files in ``policies/vault/``.

Static policies are ``policies/vault/<name>.hcl``; per-dataset policies are rendered from
``*.template.hcl`` files (``${dataset}`` is the only placeholder). Role policies whose tokens
carry no ``default`` policy get ``_token-self.hcl`` appended (lookup/renew/revoke self).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from string import Template

from vault.errors import ConfigError
from vault.ids import check_dataset_id

#: Policies written by bootstrap, in order.
STATIC_POLICY_NAMES = ("genovault-ingest", "genovault-query", "genovault-admin",
                       "genovault-service", "genovault-auditor", "genovault-shredder",
                       "genovault-shred-request", "genovault-shred-approve")
#: Policies of tokens without the ``default`` policy: they get the token-self rules too.
_SELF_SERVICE = {"genovault-ingest", "genovault-query", "genovault-admin", "genovault-service",
                 "genovault-shredder", "genovault-shred-request", "genovault-shred-approve"}

INGEST_POLICY_PREFIX = "genovault-ingest-"
_QUERY_POLICY_RE = re.compile(r"^genovault-query-[a-z0-9][a-z0-9_-]{0,62}$")


@cache
def _file(name: str) -> str:
    path = files("policies") / "vault" / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"the packaged Vault policy file policies/vault/{name} is missing: "
                          "reinstall GenoVault") from None


def _with_self(text: str) -> str:
    return text.rstrip("\n") + "\n\n" + _file("_token-self.hcl")


def with_token_self(text: str) -> str:
    """``text`` plus the token-self rules (for tokens minted without the default policy)."""
    return _with_self(text)


def policy_hcl(name: str) -> str:
    """HCL of the static policy ``name`` (one of STATIC_POLICY_NAMES), as bootstrap writes it."""
    if name not in STATIC_POLICY_NAMES:
        raise ConfigError(f"unknown GenoVault Vault policy {name!r}")
    text = _file(f"{name}.hcl")
    return _with_self(text) if name in _SELF_SERVICE else text


def static_policies() -> dict[str, str]:
    return {name: policy_hcl(name) for name in STATIC_POLICY_NAMES}


def _render(template: str, dataset: str) -> str:
    return Template(_file(template)).substitute(dataset=check_dataset_id(dataset))


def ingest_policy_name(dataset: str) -> str:
    """``genovault-ingest-<dataset>``: the policy of ingest tokens scoped to one dataset."""
    return INGEST_POLICY_PREFIX + check_dataset_id(dataset)


def ingest_policy_hcl(dataset: str) -> str:
    """HCL of ``genovault-ingest-<dataset>`` (rendered from ingest-dataset.template.hcl)."""
    return _with_self(_render("ingest-dataset.template.hcl", dataset))


def query_policy_hcl(datasets: list[str] | None) -> str:
    """HCL of a query policy: decrypt for the named datasets only, or for all if ``None``."""
    if datasets is None:
        return policy_hcl("genovault-query")
    if not datasets:
        raise ConfigError("a scoped query policy needs at least one dataset id")
    header = "# GenoVault query: unwrap data keys (transit/decrypt) only; no encrypt, no admin.\n"
    header += ('\n# Verify signed manifests (public keys of the signing key).\n'
               'path "transit/keys/genovault.manifest" {\n  capabilities = ["read"]\n}\n\n')
    blocks = [_render("query-dataset.template.hcl", ds) for ds in sorted(set(datasets))]
    return header + "\n".join(blocks)


def check_query_policy_name(name: str) -> str:
    if not _QUERY_POLICY_RE.match(name):
        raise ConfigError(
            f"invalid query policy name {name!r}: "
            "use 'genovault-query-<name>' with a-z, 0-9, '_', '-'")
    return name
