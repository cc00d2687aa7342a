# GenoVault admin: key lifecycle through explicit endpoints only.
# Allowed: list and read keys (metadata), rotate, configure the version floors and the
# auto-rotation period, rewrap ciphertexts.
# Denied (no rule matches): create, import, import_version, export, backup, restore, delete,
# trim, wrapping_key, encrypt, decrypt, hmac, datakey; config of deletion_allowed, exportable,
# allow_plaintext_backup. An admin can never bring key material of its own choosing, and can
# destroy no key version: trim would let one admin crypto-shred alone (rotate, raise both
# floors, trim the old versions), so it is not granted (raising min_decryption_version is
# reversible; deleting a key needs genovault-shred-request and genovault-shred-approve).
#
# OpenBao/Vault globs: "*" is a prefix glob only at the very end ("genovault.*/rotate" is a
# literal path); "+" is exactly one whole path segment, so "transit/keys/+" never matches
# "transit/keys/<name>/import". "+" cannot be combined with a prefix ("genovault.+" is literal),
# so these rules cover every key on the transit mount, not only genovault.* keys.
# Do not add "transit/keys/genovault.*" here: as the more specific match it would shadow the
# "+/rotate" rules for GenoVault keys.
path "transit/keys" {
  capabilities = ["list"]
}

path "transit/keys/+" {
  capabilities = ["read"]
}

path "transit/keys/+/rotate" {
  capabilities = ["update"]
}

path "transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
    "auto_rotate_period"     = []
  }
}

path "transit/rewrap/genovault.*" {
  capabilities = ["update"]
}

# Sign every manifest it commits (Transit ed25519 key genovault.manifest, made by bootstrap).
path "transit/sign/genovault.manifest" {
  capabilities = ["update"]
  allowed_parameters = {
    "input" = []
  }
}

# Anchors (KV v2 genovault-anchors/, see vault/keys/anchor.py): create/update/read on data/
# only. Never delete or patch on data/, nothing on metadata/, delete/, destroy/, undelete/ or
# config: an anchor's KV version is its counter, and only root can rewind it.
path "genovault-anchors/data/manifest/*" {
  capabilities = ["create", "update", "read"]
}

# File and read destruction requests (a second admin approves); read the legacy (KV v1)
# manifest anchors, which nobody writes any more.
path "genovault-lifecycle/destroy/*" {
  capabilities = ["create", "update", "read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}

# Participant withdrawal: compute a sample's pseudonym (key version 1 only, like ingest) and
# check it is registered. No list: the admin learns only about the ids it asks for.
path "transit/hmac/genovault.*" {
  capabilities = ["update"]
  required_parameters = ["key_version"]
  allowed_parameters = {
    "input"       = []
    "batch_input" = []
    "algorithm"   = ["sha2-256"]
    "key_version" = ["1"]
  }
}

path "genovault-registry/*" {
  capabilities = ["read"]
}

# Record lifecycle commands in the audit log: move its chain head forward (check-and-set on
# the KV version, which it can never rewind); read the legacy head.
path "genovault-anchors/data/audit/chain/head" {
  capabilities = ["create", "update", "read"]
}

path "genovault-audit/chain/head" {
  capabilities = ["read"]
}
