# GenoVault crypto-shredding, second person: `genovault datasets destroy DS --approve ID`
# deletes keys. Transit deletes only a key already marked deletable, which this policy cannot
# do (no config right): someone holding genovault-shred-request must have marked it.
# Give it to people who do NOT hold genovault-shred-request (or genovault-shredder).
path "transit/keys/+" {
  capabilities = ["read", "delete"]
}
