# GenoVault ingest for dataset ${dataset} only (policy genovault-ingest-${dataset}).
# Add data to this dataset, never read it back; nothing of any other dataset.
# "genovault.${dataset}." ends with a dot and dataset ids never contain dots, so dataset "a"
# never matches keys of dataset "a-b"; registry paths end with "/" for the same reason.
path "transit/encrypt/genovault.${dataset}.*" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "plaintext" = []
    "type"      = ["aes256-gcm96"]
  }
}

# Key metadata (type, imported_key, exportable ...) so ingest can refuse foreign keys.
path "transit/keys/genovault.${dataset}.*" {
  capabilities = ["read"]
}

# Pseudonyms: HMAC with the dataset's pseudonym key only, key version 1 only.
path "transit/hmac/genovault.${dataset}.pseudonym" {
  capabilities = ["update"]
  allowed_parameters = {
    "input"       = []
    "batch_input" = []
    "algorithm"   = ["sha2-256"]
    "key_version" = ["1"]
  }
}

path "transit/hmac/genovault.${dataset}.pseudonym/*" {
  capabilities = ["update"]
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
