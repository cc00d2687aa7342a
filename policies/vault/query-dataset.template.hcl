path "transit/decrypt/genovault.${dataset}.*" {
  capabilities = ["update"]
}
