"""GA4GH Passports and visas as credentials.

``vault.passport.visa`` verifies visa and passport JWTs against trusted issuers (PyJWT);
``vault.passport.credential`` turns a bearer passport or visa into a passport Principal
(vault/api/auth.py calls it for every JWT credential); ``vault.passport.demo`` is the
quickstart's local demo issuer. Which roles visas give is the access policy's business
(``passports:`` in policies/access, vault.policy.grants; docs/policy.md).
"""

from vault.passport.visa import (
    VISA_TYPES,
    TrustedIssuer,
    Visa,
    VisaRefused,
    verify_passport,
    verify_passport_token,
    verify_visa,
)

__all__ = ["VISA_TYPES", "TrustedIssuer", "Visa", "VisaRefused", "verify_passport",
           "verify_passport_token", "verify_visa"]
