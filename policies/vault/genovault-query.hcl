# GenoVault query: unwrap data keys (transit/decrypt) only; no encrypt, no admin.
path "transit/decrypt/genovault.*" {
  capabilities = ["update"]
}
