"""Transit key creation (the only Transit call outside the pyarrow KmsClient and pseudonyms)."""

from __future__ import annotations

import base64

import hvac
import hvac.exceptions
import requests

from vault.keys.errors import map_error


def create_transit_key(client: hvac.Client, name: str) -> None:
    """Create the aes256-gcm96 Transit key ``name`` if it does not exist (no-op if it does).

    This works with the *ingest* role's least-privilege policy: creation goes through Transit's
    encrypt-upsert (``create`` on ``transit/encrypt/genovault.*``, restricted to
    ``type=aes256-gcm96`` and ``plaintext``), so the ingest role never needs ``update`` on
    ``transit/keys/…`` — which on OpenBao would also allow rotating any ``genovault.*`` key.
    Keys created this way are never exportable and never allow plaintext backup.
    """
    empty = base64.b64encode(b"").decode("ascii")
    try:
        client.secrets.transit.encrypt_data(name, plaintext=empty, type="aes256-gcm96")
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(
            e, f"creating/using Transit key {name!r} (transit/encrypt)", addr=client.url,
            advice="the token needs the genovault-ingest or genovault-admin policy") from e
