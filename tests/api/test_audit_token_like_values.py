"""A caller's value that looks like a Vault token (a parameter, an unverified JWT claim) is
recorded withheld: the payload guard refused the whole record, so the request was answered
503 and left no audit record at all (a denied probe or a forged passport went unaudited)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import Api
from vault.audit.paths import audit_log_path
from vault.audit.record import TOKEN_LIKE_MARK

pytestmark = pytest.mark.integration
Client = Callable[[str | None], httpx.Client]
TOKEN_LIKE = "hvs." + "A" * 28


def _record(api: Api, query_id: str) -> dict:
    lines = audit_log_path(api.services.settings).read_text().splitlines()
    found = [json.loads(x) for x in lines if query_id in x]
    assert len(found) == 1, f"no audit record for {query_id}"
    return found[0]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_token_like_parameter_is_denied_and_audited(api: Api, as_user: Client) -> None:
    r = as_user("researcher-a").get("/v1/datasets/demo/frequency",
                                    params={"group_by": TOKEN_LIKE})
    assert r.status_code == 403, r.text
    rec = _record(api, r.json()["query_id"])
    assert rec["result"]["status"] == 403
    assert rec["request"]["params"]["group_by"] == TOKEN_LIKE_MARK
    assert TOKEN_LIKE not in json.dumps(rec)


def test_forged_passport_with_token_like_claims_is_401_and_audited(api: Api) -> None:
    jwt = ".".join([_b64({"alg": "RS256", "typ": "JWT"}),
                    _b64({"iss": "https://issuer.invalid", "sub": TOKEN_LIKE}), "c2ln"])
    r = httpx.get(f"{api.url}/v1/datasets", headers={"Authorization": f"Bearer {jwt}"})
    assert r.status_code == 401, r.text
    rec = _record(api, r.headers["X-Query-Id"])
    assert rec["result"]["status"] == 401
    assert rec["credential"]["claimed"]["sub"] == TOKEN_LIKE_MARK
    assert TOKEN_LIKE not in json.dumps(rec)
