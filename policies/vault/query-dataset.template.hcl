path "transit/decrypt/genovault.${dataset}.*" {
  capabilities = ["update"]
}

path "genovault-lifecycle/manifest/${dataset}" {
  capabilities = ["read"]
}
