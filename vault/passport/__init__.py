"""GA4GH Passport visas: verification against configured trusted issuers (vault.passport.visa).

Not wired into authentication yet: the API still accepts Vault tokens only (docs/beacon.md).
"""

from vault.passport.visa import (
    VISA_TYPES,
    TrustedIssuer,
    Visa,
    VisaRefused,
    verify_passport,
    verify_visa,
)

__all__ = ["VISA_TYPES", "TrustedIssuer", "Visa", "VisaRefused", "verify_passport",
           "verify_visa"]
