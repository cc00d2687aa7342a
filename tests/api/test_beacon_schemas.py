"""Beacon v2 JSON Schemas, resolved locally (tests/data/beacon-v2), and the request examples
that ship with them: every one validates against the request schema and is accepted by the
request parser. ``validate(doc, schema)`` is used by the HTTP tests of test_beacon.py."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from vault.beacon.request import BeaconError, parse_body

ROOT = Path(__file__).resolve().parents[1] / "data" / "beacon-v2"
BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"
RESPONSES = "framework/json/responses/"
GV = "models/json/beacon-v2-default-model/genomicVariations/"


@cache
def registry() -> Registry:
    """Every schema file under its upstream URL (relative $refs resolve against it)."""
    resources = []
    for path in sorted(ROOT.rglob("*.json")):
        rel = path.relative_to(ROOT).as_posix()
        if "/examples" in rel:
            continue
        uri = VRS if rel == "vrs-1.3/vrs.json" else BASE + rel
        contents = json.loads(path.read_text())
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def validator(schema: str) -> Draft202012Validator:
    """A validator for the schema at ``schema`` (a path under the beacon-v2 root)."""
    uri = BASE + schema
    return Draft202012Validator({"$ref": uri}, registry=registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(doc: Any, schema: str) -> None:
    """Raise (with every error listed) unless ``doc`` validates against ``schema``."""
    errors = sorted(validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        raise AssertionError(f"{len(errors)} schema error(s) against {schema}:\n" + "\n".join(
            f"  {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in errors[:20]))


def _examples(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.json"))


REQUEST_EXAMPLES = _examples("framework/json/requests/examples-fullDocuments")


def test_beacon_schemas__the_copy_is_complete_and_offline() -> None:
    """Every $ref of the copied schemas resolves inside the copy (but the one documented
    upstream gap), so validation never needs the network."""
    missing = set()
    reg = registry()
    for uri in list(reg):
        contents = reg[uri].contents
        stack = [contents]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    from urllib.parse import urldefrag, urljoin

                    target = urldefrag(urljoin(uri, ref))[0]
                    if target and target not in reg:
                        missing.add(target)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    assert missing == {BASE + "models/json/beacon-v2-default-model/common/info.json"}


@pytest.mark.parametrize("path", REQUEST_EXAMPLES, ids=lambda p: p.name)
def test_beacon_schemas__request_examples_validate_and_parse(path: Path) -> None:
    doc = json.loads(path.read_text())
    validate(doc, "framework/json/requests/beaconRequestBody.json")
    req = parse_body(doc)
    assert req.granularity in ("boolean", "count", "record")


def test_beacon_schemas__request_section_examples_parse_as_parts_of_a_body() -> None:
    sections = {p.name: json.loads(p.read_text())
                for p in _examples("framework/json/requests/examples-sections")}
    assert len(sections) == 3
    meta = sections["beaconRequestMeta-example.json"]
    validate(meta, "framework/json/requests/beaconRequestMeta.json")
    filters = sections["filteringTerms-example.json"]["filters"]
    validate(filters, "framework/json/requests/filteringTerms.json")
    params = sections["requestParameters-example.json"]
    validate(params, "framework/json/requests/requestParameters.json")
    body = {"meta": meta, "query": {"filters": filters, "requestParameters": params}}
    validate(body, "framework/json/requests/beaconRequestBody.json")
    req = parse_body(body)
    assert [f["id"] for f in req.filters] == [f["id"] for f in filters]


def test_beacon_schemas__the_validator_rejects_what_it_should() -> None:
    """The local validator really checks: a record without its variation, a response
    without meta and a wrong granularity are refused. (The upstream MID record example is
    not valid against its own schema — identifiers as strings — and is not copied.)"""
    assert len(_examples(GV + "examples")) == 2
    for doc in _examples(GV + "examples"):
        validate(json.loads(doc.read_text()), GV + "defaultSchema.json")
    with pytest.raises(AssertionError, match="variation"):
        validate({"variantInternalId": "x"}, GV + "defaultSchema.json")
    with pytest.raises(AssertionError, match="meta"):
        validate({"responseSummary": {"exists": True}}, RESPONSES + "beaconBooleanResponse.json")
    body = {"meta": {"apiVersion": "v2.0"}, "query": {"requestedGranularity": "all"}}
    with pytest.raises(AssertionError, match="requestedGranularity"):
        validate(body, "framework/json/requests/beaconRequestBody.json")
    with pytest.raises(ValidationError):
        validator("framework/json/requests/beaconRequestBody.json").validate(body)


@pytest.mark.parametrize("body,why", [
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestedGranularity": "all"}},
     "requestedGranularity"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"pagination": {"skip": -1}}}, "skip"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [100]}}}}, "alternateBases"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [100], "end": [90]}}}}, "end"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [1, 2], "end": [5]}}}}, "bracket"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [100], "alternateBases": "A';--"}}}}, "alternateBases"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [100], "alternateBases": "R"}}}}, "alternateBases"),
    ({"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {"g_variant": {
        "referenceName": "20", "start": [1], "end": [9], "variantType": "BND"}}}},
     "variantType"),
    ("not an object", "object"),
])
def test_beacon_schemas__bad_requests_are_refused_with_a_reason(body: Any, why: str) -> None:
    with pytest.raises(BeaconError, match=why) as info:
        parse_body(body)
    assert info.value.status == 400
