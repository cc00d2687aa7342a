"""Transit key creation and the trust check on existing keys (the only Transit calls outside the
pyarrow KmsClient and pseudonyms)."""

from __future__ import annotations

import base64
from typing import Any

import hvac
import hvac.exceptions
import requests

from vault.errors import KeyNotTrusted
from vault.keys.errors import map_error

#: The one key type GenoVault creates (encrypt-upsert with type=aes256-gcm96); the pseudonym
#: key is created the same way and HMACs with the key's HMAC key, so its type is the same.
TRUSTED_KEY_TYPE = "aes256-gcm96"


def create_transit_key(client: hvac.Client, name: str, *, derived: bool = False) -> None:
    """Create the aes256-gcm96 Transit key ``name`` if it does not exist (no-op if it does).

    This works with the *ingest* role's least-privilege policy: creation goes through Transit's
    encrypt-upsert (``create`` on ``transit/encrypt/genovault.*``, restricted to
    ``type=aes256-gcm96`` and ``plaintext``), so the ingest role never needs ``update`` on
    ``transit/keys/…`` — which on OpenBao would also allow rotating any ``genovault.*`` key.
    Keys created this way are never exportable and never allow plaintext backup.

    ``derived``: the upsert carries a ``context``, which makes Transit create the key with
    ``derived=true`` (key derivation per context, never convergent: that needs
    ``convergent_encryption``, which no GenoVault policy allows).
    """
    empty = base64.b64encode(b"").decode("ascii")
    context = base64.b64encode(b"genovault-create").decode("ascii") if derived else None
    try:
        client.secrets.transit.encrypt_data(name, plaintext=empty, type="aes256-gcm96",
                                            context=context)
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(
            e, f"creating/using Transit key {name!r} (transit/encrypt)", addr=client.url,
            advice="the token needs a genovault-ingest policy (encrypt-upsert)" + (
                "; a new dataset's keys are derived (schema 6): if the policy was written "
                "by an older GenoVault, an admin reruns `genovault vault bootstrap`"
                if derived else "")) from e


def read_transit_key(client: hvac.Client, name: str) -> dict[str, Any] | None:
    """Metadata of Transit key ``name`` (never material), or None if it does not exist."""
    try:
        resp = client.secrets.transit.read_key(name)
    except hvac.exceptions.InvalidPath:
        return None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(
            e, f"reading Transit key {name!r} (transit/keys)", addr=client.url,
            advice=f"the token needs read on transit/keys/{name} (the genovault-ingest "
                   "policies grant it) so that GenoVault can check the key is its own") from e
    data: dict[str, Any] = resp["data"]
    return data


def untrusted_reasons(info: dict[str, Any], *, derived: bool = False) -> list[str]:
    """Why a key's metadata does not look like a key GenoVault created; [] if it does.

    ``derived``: the key must be a derived key (a bound dataset's Parquet keys); otherwise it
    must not be. Without derivation a Transit key ignores the context, which would silently
    drop a bound dataset's binding."""
    why = []
    if info.get("type") != TRUSTED_KEY_TYPE:
        why.append(f"type {info.get('type')!r} instead of {TRUSTED_KEY_TYPE}")
    if info.get("imported_key") is not False:
        why.append("imported key material (bring-your-own-key)")
    for flag in ("exportable", "allow_plaintext_backup", "convergent_encryption",
                 "soft_deleted"):
        if info.get(flag):
            why.append(f"{flag} is true")
    if bool(info.get("derived")) != derived:
        why.append(f"derived is {str(bool(info.get('derived'))).lower()} (expected "
                   f"{str(derived).lower()} for this dataset)")
    return why


def check_trusted(info: dict[str, Any], name: str, *, derived: bool = False) -> None:
    """Raise KeyNotTrusted unless ``info`` (from read_transit_key) is a GenoVault-made key."""
    why = untrusted_reasons(info, derived=derived)
    if why:
        raise KeyNotTrusted(
            f"Transit key {name!r} was not created by GenoVault ({'; '.join(why)}): refusing "
            "to encrypt or pseudonymise anything under it. Someone with key rights created or "
            "imported it; investigate (Vault audit log), then have a root operator delete it "
            "or use another dataset id")
