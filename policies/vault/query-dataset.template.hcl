path "transit/decrypt/genovault.${dataset}.*" {
  capabilities = ["update"]
}

path "genovault-anchors/data/manifest/${dataset}" {
  capabilities = ["read"]
}

path "genovault-lifecycle/manifest/${dataset}" {
  capabilities = ["read"]
}
