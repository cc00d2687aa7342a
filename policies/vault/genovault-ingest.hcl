# GenoVault ingest, ALL datasets (AppRole pipelines and legacy callers). Prefer the per-dataset
# policy genovault-ingest-<dataset> (template ingest-dataset.template.hcl), which a token gets
# from mint_role_token(..., dataset=...).
# Add data, never read it back. Keys are created through encrypt-upsert (create), restricted to
# non-exportable aes256-gcm96; keys may be read (metadata only, never material) so that ingest
# can refuse keys GenoVault did not create. No rotate, config, import, export or delete.
path "transit/encrypt/genovault.*" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "plaintext" = []
    "type"      = ["aes256-gcm96"]
    "context"   = []
  }
}

path "transit/keys/genovault.*" {
  capabilities = ["read"]
}

# Register the batch's pseudonyms: create only (an existing entry -> 403 = duplicate sample),
# delete to release a failed ingest's entries; never read or list (see vault/keys/registry.py).
path "genovault-registry/*" {
  capabilities = ["create", "delete"]
}

# Pseudonymise sample ids with transit/hmac/genovault.<dataset>.pseudonym (single or batch),
# always with version 1 of the key so a sample keeps its pseudonym after a key rotation.
# key_version is required: without it Transit uses the latest version (allowed_parameters
# only restricts a parameter that is sent).
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

# Sign every manifest it commits (Transit ed25519 key genovault.manifest, made by bootstrap).
path "transit/sign/genovault.manifest" {
  capabilities = ["update"]
  allowed_parameters = {
    "input" = []
  }
}

# Anchor each manifest version it commits (rollback detection): KV v2, check-and-set on the
# version, never delete/metadata/destroy; read the legacy (KV v1) anchors.
path "genovault-anchors/data/manifest/*" {
  capabilities = ["create", "update", "read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}
