"""Structured JSON logs for the service: one object per line, no genotypes, tokens or ids.

Only fields the service chooses are logged (method, route template, status, duration,
query id, principal display name); request bodies and query strings are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = "genovault.api"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(record.created)),
                               "level": record.levelname.lower(), "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        return json.dumps(out, default=str)


def configure(level: int = logging.INFO) -> logging.Logger:
    log = logging.getLogger(LOGGER)
    if not any(isinstance(h.formatter, JsonFormatter) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return log
