# GenoVault ingest for dataset ${dataset} only (policy genovault-ingest-${dataset}).
# Add data to this dataset, never read it back; nothing of any other dataset.
# "genovault.${dataset}." ends with a dot and dataset ids never contain dots, so dataset "a"
# never matches keys of dataset "a-b"; registry paths end with "/" for the same reason.
path "transit/encrypt/genovault.${dataset}.*" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "plaintext" = []
    "type"      = ["aes256-gcm96"]
    "context"   = []
  }
}

# Key metadata (type, imported_key, exportable ...) so ingest can refuse foreign keys.
path "transit/keys/genovault.${dataset}.*" {
  capabilities = ["read"]
}

# Pseudonyms: HMAC with the dataset's pseudonym key only, key version 1 only (required: an
# HMAC without key_version would use the latest version).
path "transit/hmac/genovault.${dataset}.pseudonym" {
  capabilities = ["update"]
  required_parameters = ["key_version"]
  allowed_parameters = {
    "input"       = []
    "batch_input" = []
    "algorithm"   = ["sha2-256"]
    "key_version" = ["1"]
  }
}

path "transit/hmac/genovault.${dataset}.pseudonym/*" {
  capabilities = ["update"]
  required_parameters = ["key_version"]
  allowed_parameters = {
    "input"       = []
    "batch_input" = []
    "algorithm"   = ["sha2-256"]
    "key_version" = ["1"]
  }
}

# Sample registry of this dataset: create (403 on an existing entry = duplicate) and delete.
path "genovault-registry/${dataset}/*" {
  capabilities = ["create", "delete"]
}

# Sign every manifest it commits (Transit ed25519 key genovault.manifest, made by bootstrap).
path "transit/sign/genovault.manifest" {
  capabilities = ["update"]
  allowed_parameters = {
    "input" = []
  }
}

path "transit/keys/genovault.manifest" {
  capabilities = ["read"]
}

# Anchor each manifest version of this dataset it commits (rollback detection): KV v2,
# check-and-set on the version, never delete/metadata/destroy; read the legacy anchor.
path "genovault-anchors/data/manifest/${dataset}" {
  capabilities = ["create", "update", "read"]
}

path "genovault-lifecycle/manifest/${dataset}" {
  capabilities = ["read"]
}
