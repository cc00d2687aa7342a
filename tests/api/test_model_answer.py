"""``fastjson.model_answer`` answers exactly what FastAPI's ``response_model`` would (the same
bytes, the same refusal of a key the model does not declare), without FastAPI's second trip
through the thread pool."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from vault.api import models as m
from vault.api.fastjson import model_answer

ENVELOPE = {"query_id": "ab" * 16, "dataset": "demo", "dataset_version": "v-é-1",
            "policy": {"role": "grouped-researcher", "policy_version": "p1",
                       "rules": ["allow-a", "ünïcode ✓"]}}
DISCLOSURE = {"tier": "controlled", "k": 11, "min_group_size": 20, "suppressed_cells": 0,
              "epsilon_spent": 0.1 + 0.2, "noise_scale": 1e-7,
              "rules": ["cells under k are null"]}
BODIES: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "presence": (m.PresenceAnswer, {**ENVELOPE, "statistic": "presence",
                                    "variant": {"chrom": "20", "pos": 1, "ref": "A",
                                                "alt": "<DEL>"},
                                    "exists": None, "disclosure": DISCLOSURE}),
    "sql": (m.SqlAnswer, {**ENVELOPE, "columns": ["n", "mean_af", "s", "b"],
                          "rows": [[3, 0.30000000000000004, "x\u2028y", True],
                                   [0, None, "", False], [2**53 + 1, 1e300, "\"q\"", None]],
                          "count": 3, "truncated": False, "views": ["frequency"],
                          "disclosure": DISCLOSURE}),
    "association": (m.AssociationAnswer, {
        **ENVELOPE, "statistic": "association", "group_by": "phenotype", "case": "case",
        "control": "control", "count": 1, "truncated": True, "next_cursor": 1,
        "disclosure": {"tier": "controlled", "k": 11, "rules": []},
        "variants": [{"chrom": "20", "pos": 5, "ref": "C", "alt": "T",
                      "groups": {"case": {"n": 30, "hom_ref": 20, "het": None, "hom_alt": None,
                                          "missing": 0}},
                      "test": {"allelic_chi2": 0.5, "allelic_p": 0.479500122186953,
                               "fisher_p": None, "trend_p": 1.0, "odds_ratio": 2.5,
                               "or_ci_low": -0.0, "or_ci_high": 7.25},
                      "suppressed": [{"cell": "groups.case", "reason": "count<k"}]}]}),
}


def _get(body: dict[str, Any], model: type[Any]) -> tuple[httpx.Response, httpx.Response]:
    """(FastAPI's response_model answer, model_answer's) for ``body``."""
    app = FastAPI()

    @app.get("/fastapi", response_model=model)
    def by_fastapi() -> dict[str, Any]:
        return body

    @app.get("/ours", response_model=model)
    def ours() -> Any:
        return model_answer(body, model)

    async def both() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get("/fastapi"), await c.get("/ours")

    return asyncio.run(both())


@pytest.mark.parametrize("name", list(BODIES))
def test_model_answer__same_bytes_as_response_model(name: str) -> None:
    model, body = BODIES[name]
    a, b = _get(body, model)
    assert a.status_code == b.status_code == 200
    assert b.content == a.content
    assert b.headers["content-type"] == a.headers["content-type"]


@pytest.mark.parametrize("name", list(BODIES))
def test_model_answer__refuses_what_the_model_does_not_declare(name: str) -> None:
    model, body = BODIES[name]
    bad = {**body, "sample_ids": ["NA12878"]}  # a key no answer model declares
    a, b = _get(bad, model)
    assert a.status_code == b.status_code == 500
