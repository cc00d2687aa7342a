"""Policy files shipped with GenoVault: Vault ACL policies (vault/) and access policies
(access/)."""
