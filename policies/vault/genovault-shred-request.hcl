# GenoVault crypto-shredding, first person: `genovault datasets destroy DS --request` marks the
# dataset's Transit keys deletable (deletion_allowed=true). Cannot delete anything.
# Give it to people who do NOT hold genovault-shred-approve (or genovault-shredder): Vault then
# needs two of them to delete a key (see docs/lifecycle.md, "Crypto-shredding").
path "transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = ["true"]
  }
}

path "transit/keys/+" {
  capabilities = ["read"]
}
