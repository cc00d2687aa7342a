"""Property-based tests of every operation of the live API's OpenAPI document (schemathesis).

The schema is read from the running server (``GET {api.url}/openapi.json``, real HTTP on
loopback) and each operation gets a bounded number of generated cases — valid and invalid
inputs (schemathesis' positive and negative modes) — sent with researcher-a's real Vault
token. Every answer must:

* not be a server error (``not_a_server_error``);
* carry a status code the schema documents (``status_code_conformance``);
* have the content type and body the schema documents for it (``content_type_conformance``,
  ``response_schema_conformance``);
* contain neither a stack trace nor the caller's token (``no_trace_nor_token``, below).

Two runs: every operation with generated path parameters (dataset ids are mostly absent:
404s and 422s), and the operations under ``/v1/datasets/{dataset}`` again with ``dataset``
fixed to ``demo``, so generated queries reach the policy, the disclosure control and the
computations. Nothing is excluded: every operation of the document is exercised (the second
run selects the dataset routes because the others have no ``dataset`` to fix).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 20
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))
#: cases run per run and operation label, reported at the end of the module
CASES: dict[str, Counter[str]] = {"any": Counter(), "demo": Counter()}
STATUSES: dict[str, Counter[int]] = {"any": Counter(), "demo": Counter()}
_SECRETS: list[str] = []


@pytest.fixture(scope="module")
def api_schema(api: Api) -> Any:
    _SECRETS[:] = [api.tokens["researcher-a"], api.bao.root_token]
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", timeout=10)


@pytest.fixture(scope="module")
def demo_schema(api: Api) -> Any:
    _SECRETS[:] = [api.tokens["researcher-a"], api.bao.root_token]
    config = SchemathesisConfig.from_dict({"parameters": {"path.dataset": "demo"}})
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json", config=config, timeout=10)


schema = schemathesis.pytest.from_fixture("api_schema")
demo = schemathesis.pytest.from_fixture("demo_schema").include(path_regex=r"\{dataset\}")


def no_trace_nor_token(ctx: Any, response: Any, case: Any) -> bool | None:
    """No body holds a Python stack trace, a server path or a secret."""
    text = response.text or ""
    assert "Traceback" not in text, "a stack trace in the body"
    assert 'File "/' not in text, "a server path in the body"
    for secret in _SECRETS:
        assert secret not in text, "a token in the body"
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, no_trace_nor_token]


def _call(case: Any, api: Api, run: str) -> None:
    CASES[run][case.operation.label] += 1
    response = case.call(headers={"Authorization": f"Bearer {api.tokens['researcher-a']}"},
                         timeout=30)
    STATUSES[run][response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@SETTINGS
def test_schemathesis__every_operation_conforms(case: Any, api: Api) -> None:
    _call(case, api, "any")


@demo.parametrize()
@SETTINGS
def test_schemathesis__dataset_operations_on_demo_conform(case: Any, api: Api) -> None:
    assert case.path_parameters["dataset"] == "demo"
    _call(case, api, "demo")


def test_schemathesis__every_operation_was_exercised(api_schema: Any) -> None:
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert labels, "the schema has no operations"
    assert not labels - set(CASES["any"]), f"never exercised: {labels - set(CASES['any'])}"
    on_demo = {label for label in labels if "{dataset}" in label}
    assert not on_demo - set(CASES["demo"]), f"not run on demo: {on_demo - set(CASES['demo'])}"
    for run, counts in CASES.items():
        print(f"\nschemathesis ({run}): {sum(counts.values())} cases over {len(counts)} "
              f"operations: {dict(counts)}; statuses {dict(STATUSES[run])}")
    assert STATUSES["demo"][200] > 0, "no generated query on demo was answered"
