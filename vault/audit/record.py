"""One audit record: canonical JSON, its hash, its time stamp, and the payload guard."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

#: ``prev`` of the first record.
GENESIS = "0" * 64

#: Record types. ``request`` is written before the work runs, ``response`` (same query_id)
#: after it and before the answer is sent; ``complete`` is one record for a request that is
#: decided and answered without running any work (a denial).
RECORD_TYPES = ("request", "response", "complete")

#: Fields the log itself writes; a payload may not set them.
RESERVED = frozenset({"seq", "time", "type", "query_id", "prev", "hash"})

#: Keys that must never appear anywhere in a payload (compared lower-case, ``-`` as ``_``).
FORBIDDEN_KEYS = frozenset({
    "token", "client_token", "vault_token", "access_token", "id_token", "refresh_token",
    "secret_id", "password", "unseal_key", "root_token", "key_material", "plaintext",
    "genotype", "genotypes", "gt",
    "sample", "sample_id", "sample_ids", "sample_name", "sample_names",
    "pseudonym", "pseudonyms",
})

#: String values that look like Vault/OpenBao tokens (service, batch, recovery; old ``s.``).
_TOKEN_LIKE = re.compile(r"^(hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}")

#: a token-like string anywhere in a value (a reason code can quote a caller's value)
_TOKEN_INSIDE = re.compile(r"(?<![A-Za-z0-9_.-])(hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def canonical(obj: Any) -> str:
    """The one serialisation of a record: sorted keys, compact, ASCII (so every control
    character is escaped), no NaN or infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


#: The order of the log's own fields at the start of each line (``hash`` comes last).
HEADER = ("seq", "time", "type", "query_id", "prev")


def line_of(record: dict[str, Any]) -> str:
    """The line written for ``record`` (without newline): compact ASCII JSON, the header
    fields first, then the payload fields (nested keys sorted), ``hash`` last. Same content
    as :func:`canonical`, in an order a person can read with ``tail``."""
    ordered = {k: record[k] for k in HEADER if k in record}
    for k in sorted(record):
        if k not in ordered and k != "hash":
            ordered[k] = json.loads(canonical(record[k]))
    if "hash" in record:
        ordered["hash"] = record["hash"]
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def encode_payload(payload: dict[str, Any]) -> dict[str, str]:
    """The checked payload as ``{field: canonical JSON of its value}``: what
    :func:`encode_record` assembles a record from (each value serialised once, before the
    log's lock is taken). Raises ValueError like :func:`check_payload`."""
    check_payload(payload, serialise=False)
    try:
        return {k: canonical(v) for k, v in payload.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit payload is not plain JSON: {exc}") from None


def encode_record(header: dict[str, Any], fields: dict[str, str]) -> tuple[str, str]:
    """``(hash, line)`` of the record made of the log's ``header`` fields (plain values) and
    the payload ``fields`` of :func:`encode_payload`: the same text as :func:`record_hash`
    and :func:`line_of` of that record, assembled from the serialised parts instead of
    serialising the whole record twice (a canonical object is its sorted key/value pairs)."""
    parts = {k: canonical(v) for k, v in header.items()}
    parts.update(fields)
    body = "{" + ",".join(f"{canonical(k)}:{parts[k]}" for k in sorted(parts)) + "}"
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()
    first = [k for k in HEADER if k in parts]
    rest = sorted(k for k in parts if k not in HEADER)
    line = "{" + ",".join(f"{canonical(k)}:{parts[k]}" for k in (*first, *rest)) + \
        f',"hash":"{digest}"}}'
    return digest, line


def record_hash(record: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``record`` without its ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("ascii")).hexdigest()


def utc_now() -> str:
    """RFC 3339 UTC time with microseconds, e.g. ``2026-05-01T12:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time as an aware datetime (a naive one is taken as UTC)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def check_payload(payload: dict[str, Any], *, serialise: bool = True) -> None:
    """Raise ValueError if ``payload`` sets a reserved field, holds a forbidden key anywhere
    (token, genotypes, sample_id, pseudonym …), a token-like string, or is not plain JSON
    (``serialise=False``: the caller serialises it next and reports that itself)."""
    if not isinstance(payload, dict):
        raise ValueError("an audit payload is a dict")
    clash = RESERVED & payload.keys()
    if clash:
        raise ValueError(f"audit payload may not set {sorted(clash)}: the log writes them")
    _walk(payload, "payload")
    if not serialise:
        return
    try:
        canonical(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit payload is not plain JSON: {exc}") from None


def _walk(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit payload key at {where} is not a string")
            if key.lower().replace("-", "_") in FORBIDDEN_KEYS:
                raise ValueError(f"audit payload may not carry {key!r} (at {where}): "
                                 "no tokens, genotypes, sample ids or pseudonyms in the log")
            _walk(sub, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            _walk(sub, f"{where}[{i}]")
    elif isinstance(value, str):
        if _TOKEN_LIKE.match(value):
            raise ValueError(f"audit payload value at {where} looks like a Vault token")
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"audit payload value at {where} is a {type(value).__name__}, "
                         "not a JSON value")


#: what :func:`redact_token_like` writes instead of a token-like string
TOKEN_LIKE_MARK = "<withheld: looks like a Vault token>"  # noqa: S105 (a marker)


def redact_token_like(value: Any) -> Any:
    """``value`` with every token-like part of its strings replaced by
    :data:`TOKEN_LIKE_MARK`. For payloads holding what callers sent (query parameters, the
    unverified claims of a refused JWT, reason codes quoting them): such a value is then
    recorded withheld, instead of :func:`check_payload` refusing the whole record and the
    request going unaudited."""
    if isinstance(value, dict):
        return {k: redact_token_like(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_token_like(v) for v in value]
    if isinstance(value, str):
        return _TOKEN_INSIDE.sub(TOKEN_LIKE_MARK, value)
    return value


def is_hex64(text: object) -> bool:
    return isinstance(text, str) and bool(_HEX64.match(text))


def is_hex32(text: object) -> bool:
    return isinstance(text, str) and bool(_HEX32.match(text))
