"""Everything that talks to Vault/OpenBao: the only package that imports hvac.

The rest of GenoVault sees a narrow interface: a connected client (opaque), a
:class:`~vault.keys.kms.Keyring` that wraps/unwraps Parquet data keys and computes
pseudonyms by key *name*, and the identity behind a token. Key material never leaves Vault.
"""
