# GenoVault query service (its own AppRole identity): unwrap data keys, read key metadata to pin
# key versions, and keep the audit chain anchor; when it runs queries on Dask, mint its
# workers' short-lived query tokens through the genovault-query-worker token role only
# (policies genovault-query-<dataset>, no more than the service holds itself; children of the
# service's token, not renewable, at most 30 minutes: Vault enforces all of it) and revoke
# them by accessor when a worker could not revoke its own (docs/scale.md). Nothing else: no
# encrypt, no hmac, no key management, no registry, no policies, no orphan or other tokens.
path "transit/decrypt/genovault.*" {
  capabilities = ["update"]
}

path "transit/keys/genovault.*" {
  capabilities = ["read"]
}

# Audit chain heads: move them forward (KV v2, check-and-set on the version, which is the
# seq); never delete/patch, nothing on metadata/destroy/config. The legacy heads: read only.
path "genovault-anchors/data/audit/*" {
  capabilities = ["create", "update", "read"]
}

path "genovault-audit/*" {
  capabilities = ["read"]
}

path "genovault-anchors/data/manifest/*" {
  capabilities = ["read"]
}

path "genovault-lifecycle/manifest/*" {
  capabilities = ["read"]
}

path "auth/token/create/genovault-query-worker" {
  capabilities = ["update"]
}

# Revoke a worker token the service minted, by its accessor. Vault cannot narrow this to the
# service's own children: it revokes any token whose accessor the caller knows (accessors are
# HMAC-hashed in the audit log; listing them needs sudo). That is denial of service at worst;
# it never grants a right (docs/scale.md, "Vault rights").
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
  allowed_parameters = {
    "accessor" = []
  }
}
