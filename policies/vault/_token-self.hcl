# Every GenoVault role token: look itself up (who am I), renew and revoke itself. Minted role
# tokens carry no `default` policy, so these are spelled out.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}
