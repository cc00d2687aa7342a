"""Researcher log-in: userpass (OIDC/LDAP work the same way in a real deployment) and logout.

The token a login returns is the caller's own; the CLI keeps it in a 0600 file and sends it
to the API, which looks it up in Vault. It needs no Transit right at all.
"""

from __future__ import annotations

import hvac
import hvac.exceptions
import requests

from vault.errors import VaultUnauthenticated
from vault.keys.errors import map_error

USERPASS_MOUNT = "userpass"
LOGIN_TIMEOUT_S = 10


def userpass_login(addr: str, username: str, password: str,
                   mount: str = USERPASS_MOUNT) -> str:
    """Log in with userpass; returns the token (a secret: never print or log it)."""
    client = hvac.Client(url=addr, timeout=LOGIN_TIMEOUT_S)
    try:
        resp = client.auth.userpass.login(username=username, password=password,
                                          mount_point=mount)
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
            hvac.exceptions.Unauthorized) as e:
        raise VaultUnauthenticated(
            f"Vault at {addr} refused the log-in of {username!r}: wrong user name or "
            "password") from e
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, f"log-in of {username!r}", addr=addr) from e
    token: str = resp["auth"]["client_token"]
    return token


def revoke_self(addr: str, token: str) -> None:
    """Revoke ``token`` (logout). A token that is already invalid counts as revoked."""
    client = hvac.Client(url=addr, token=token, timeout=LOGIN_TIMEOUT_S)
    try:
        client.auth.token.revoke_self()
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
        return
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as e:
        raise map_error(e, "logout", addr=addr) from e
