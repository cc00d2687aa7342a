"""The quickstart's local demo issuer: a key that plays a data access committee.

``demo_issuer(folder)`` makes an RSA key on first use (``demo-issuer.key.pem``, mode 0600,
beside the demo data in GENOVAULT_HOME; never shipped) and writes its public JWKS next to
it; ``demo_policy(folder, shipped)`` writes a policy directory: the shipped policy files
plus a ``passports.yaml`` that trusts this issuer and maps its ControlledAccessGrants visa
for the demo dataset onto the controlled tier on that dataset. Development only: the key
is as safe as GENOVAULT_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEMO_ISS = "https://demo-dac.genovault.invalid"
DEMO_AUDIENCE = "genovault-demo"
KID = "demo-1"


def grant_value(dataset: str) -> str:
    """The ``value`` of the demo DAC's ControlledAccessGrants visa for ``dataset``."""
    return f"https://genovault.invalid/datasets/{dataset}"


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@dataclass
class DemoIssuer:
    key: rsa.RSAPrivateKey
    key_path: Path
    jwks_path: Path

    def visa(self, sub: str, vtype: str, value: str, *, by: str = "dac",
             ttl_s: int = 3600) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEMO_ISS, "sub": sub, "aud": DEMO_AUDIENCE, "iat": now, "exp": now + ttl_s,
            "jti": f"demo-{vtype}-{now}",
            "ga4gh_visa_v1": {"type": vtype, "asserted": now, "value": value,
                              "source": DEMO_ISS, "by": by}}
        return jwt.encode(claims, self.key, algorithm="RS256",
                          headers={"kid": KID, "typ": "vnd.ga4gh.visa+jwt"})


def demo_issuer(folder: Path) -> DemoIssuer:
    """The demo issuer's key (made once, 0600) and its public JWKS (rewritten each time)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = folder / "demo-issuer.key.pem"
    if key_path.exists():
        if key_path.stat().st_mode & 0o077:
            os.chmod(key_path, 0o600)
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{key_path} is not an RSA key; delete it to make a new one")
        key = loaded
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": KID, "alg": "RS256",
                                                                "use": "sig"}
    jwks_path = folder / "demo-issuer.jwks.json"
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=1), encoding="utf-8")
    return DemoIssuer(key, key_path, jwks_path)


def demo_policy(folder: Path, shipped: Path, issuer: DemoIssuer, dataset: str) -> Path:
    """A policy directory: the shipped ``*.yaml`` files and ``passports.yaml`` trusting the
    demo issuer."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for f in sorted(shipped.glob("*.yaml")):
        shutil.copyfile(f, folder / f.name)
    (folder / "passports.yaml").write_text(f"""\
# Written by `genovault quickstart`: trust the local demo issuer (a key in GENOVAULT_HOME
# that plays a data access committee). Not for production. docs/policy.md, "passports:".
version: 1
passports:
  audience: {DEMO_AUDIENCE}
  issuers:
    demo-dac:
      iss: {DEMO_ISS}
      jwks: {issuer.jwks_path}
  visas:
    - description: the demo DAC's grant for the {dataset} dataset -> controlled tier there
      require:
        - type: ControlledAccessGrants
          issuer: demo-dac
          value: {grant_value(dataset)}
          by: [dac]
      role: grouped-researcher
      datasets: [{dataset}]
""", encoding="utf-8")
    return folder
