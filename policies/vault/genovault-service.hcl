# GenoVault query service (its own AppRole identity): unwrap data keys, read key metadata to pin
# key versions, and keep the audit chain anchor. Nothing else: no encrypt, no hmac, no key
# management, no registry, no policies, no tokens for others.
path "transit/decrypt/genovault.*" {
  capabilities = ["update"]
}

path "transit/keys/genovault.*" {
  capabilities = ["read"]
}

path "genovault-audit/*" {
  capabilities = ["create", "update", "read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}
