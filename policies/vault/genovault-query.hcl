# GenoVault query: unwrap data keys (transit/decrypt) only; no encrypt, no admin.
path "transit/decrypt/genovault.*" {
  capabilities = ["update"]
}

# Verify manifests: the signing key's public keys (pinned on first use) and version anchors.
path "transit/keys/genovault.manifest" {
  capabilities = ["read"]
}

path "genovault-anchors/data/manifest/*" {
  capabilities = ["read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}
