"""Names that GenoVault and its Vault policies agree on: mount, roles, key names."""

from __future__ import annotations

from vault.ids import check_dataset_id

TRANSIT_MOUNT = "transit"
APPROLE_MOUNT = "approle"
USERPASS_MOUNT = "userpass"
#: KV v2 mount of the anchors (vault/keys/anchor.py): the audit chain heads
#: (``audit/<path>``) and the manifest version anchors (``manifest/<dataset>``); each entry's
#: KV version is its counter, written with check-and-set.
ANCHOR_MOUNT = "genovault-anchors"
#: KV v1 mount that held the audit chain anchor before ANCHOR_MOUNT (read-only since).
AUDIT_MOUNT = "genovault-audit"
#: KV v1 mount of the lifecycle: destruction requests (``destroy/<dataset>``) and, read-only
#: since ANCHOR_MOUNT, the old manifest version anchors (``manifest/<dataset>``).
LIFECYCLE_MOUNT = "genovault-lifecycle"
#: The Transit ed25519 key that signs every manifest (created by bootstrap, never exportable).
#: One dot only: dataset keys are ``genovault.<dataset>.<class>`` (two dots), so no clash.
SIGNING_KEY = "genovault.manifest"
#: Path of the file audit device GenoVault declares (``sys/audit/genovault``).
AUDIT_DEVICE_PATH = "genovault"
#: GenoVault's Vault roles (token roles and AppRole roles are ``genovault-<role>``).
ROLES = ("ingest", "query", "admin")
#: Token roles minted by GenoVault (from root only: no policy grants their create path): the
#: roles plus crypto-shredding's two halves, ``shred-request`` (mark a key deletable: destroy
#: --request) and ``shred-approve`` (delete a marked key: destroy --approve), and
#: ``shredder`` (both at once: compact --shred-old-keys). No AppRole, no long-lived
#: credentials.
TOKEN_ROLES = (*ROLES, "shredder", "shred-request", "shred-approve")
#: Token roles of scale-out workers' credentials (vault.keys.workers), never minted by
#: mint_role_token: ``query-worker`` (policies ``genovault-query-<dataset>``) and
#: ``ingest-worker`` (``genovault-ingest-<dataset>.encrypt``). Their tokens are children of the
#: minting token (revoked with it), not renewable, and capped by WORKER_TOKEN_MAX_TTL_S.
WORKER_TOKEN_ROLES = ("query-worker", "ingest-worker")
#: The longest a worker token may live (seconds), enforced by Vault (the token role's
#: ``token_explicit_max_ttl``), whatever the minter asks for: a query on Dask must finish
#: within 30 minutes (default GENOVAULT_DASK_CREDENTIAL_TTL 10m); an ingest within 60 minutes
#: (the default --ttl-minutes), as an ingest task is a whole VCF file.
WORKER_TOKEN_MAX_TTL_S = {"query-worker": 30 * 60, "ingest-worker": 60 * 60}
#: AppRole roles: the token roles plus the query service's own identity.
APPROLE_ROLES = (*ROLES, "service")

DATA_CLASSES = ("genotypes", "sites", "samples", "footer", "pseudonym")
#: Classes whose keys wrap Parquet data keys (the pseudonym key only computes HMACs).
PARQUET_CLASSES = ("genotypes", "sites", "samples", "footer")
#: Pseudonyms are always computed with version 1 of the dataset's pseudonym key, so rotating
#: that key never changes a sample's pseudonym (duplicate checks and withdrawal keep working).
PSEUDONYM_KEY_VERSION = "1"  # a string: Vault policies compare parameter values as text


def batch_genotype_key(dataset: str, batch_dir: str) -> str:
    """The genotypes key of one batch (``genovault.<dataset>.genotypes.<batch folder>``): a
    batch's genotypes can be crypto-shredded alone (e.g. the old copy of a compacted batch).
    Still under the ``genovault.<dataset>.*`` policy globs."""
    if not batch_dir or not all(c.isalnum() or c == "." for c in batch_dir):
        raise ValueError(f"invalid batch folder name {batch_dir!r}")
    return f"{transit_key_name(dataset, 'genotypes')}.{batch_dir}"


def transit_key_name(dataset: str, data_class: str) -> str:
    """Name of the Transit key for one dataset and data class, e.g. ``genovault.cohort1.genotypes``.

    Dots separate the parts because dataset ids cannot contain dots, so the Vault policy glob
    ``genovault.<dataset>.*`` never matches another dataset's keys.
    """
    return f"genovault.{check_dataset_id(dataset)}.{data_class}"
