# GenoVault query service (its own AppRole identity): unwrap data keys, read key metadata to pin
# key versions, and keep the audit chain anchor; when it runs queries on Dask, mint its
# workers' short-lived query tokens through the genovault-query token role (whose policies
# are the query policies, no more than the service holds itself; docs/scale.md). Nothing
# else: no encrypt, no hmac, no key management, no registry, no policies, no other tokens.
path "transit/decrypt/genovault.*" {
  capabilities = ["update"]
}

path "transit/keys/genovault.*" {
  capabilities = ["read"]
}

# Audit chain heads: move them forward (KV v2, check-and-set on the version, which is the
# seq); never delete/patch, nothing on metadata/destroy/config. The legacy heads: read only.
path "genovault-anchors/data/audit/*" {
  capabilities = ["create", "update", "read"]
}

path "genovault-audit/*" {
  capabilities = ["read"]
}

path "genovault-anchors/data/manifest/*" {
  capabilities = ["read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}

path "auth/token/create/genovault-query" {
  capabilities = ["update"]
}
