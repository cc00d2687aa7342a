# GenoVault crypto-shredder: used only by `genovault datasets destroy --approve` (a second admin
# approving another admin's request). May mark a key deletable and delete it. Nothing else.
# "+" is one whole path segment (see genovault-admin.hcl): these rules cover every key of the
# transit mount. The token role genovault-shredder can be used only by root / bootstrap
# operators (no admin policy grants auth/token/create/genovault-shredder).
path "transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = ["true"]
  }
}

path "transit/keys/+" {
  capabilities = ["read", "delete"]
}
