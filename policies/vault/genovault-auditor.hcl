# GenoVault auditor: read the audit chain anchors (current and legacy). Nothing else.
path "genovault-anchors/data/audit/*" {
  capabilities = ["read"]
}

path "genovault-audit/*" {
  capabilities = ["read"]
}
