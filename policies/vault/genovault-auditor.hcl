# GenoVault auditor: read the audit chain anchor. Nothing else.
path "genovault-audit/*" {
  capabilities = ["read"]
}
