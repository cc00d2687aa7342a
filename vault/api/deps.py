"""The API's dependencies (one home, as ``Annotated`` aliases) and the services they hold."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

from vault.api.guard import Guard
from vault.audit.log import AppendTiming
from vault.query.service import QueryService
from vault.settings import Settings
from vault.store.dataset import Store


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("genovault_requests_total", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("genovault_request_seconds", "request latency by route",
                                 ["route"], registry=self.registry,
                                 buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5, 5, 10))
        self.cache_bytes = Gauge("genovault_partition_cache_bytes",
                                 "decrypted partitions held in memory", registry=self.registry)

    def watch_audit(self, timing: Callable[[], AppendTiming]) -> None:
        """Export the audit append's turn (the one serial step of every request): read at
        each scrape from ``timing`` (e.g. ``lambda: audit.timing``). Once per registry."""
        self.registry.register(_AuditTurnCollector(timing))


class _AuditTurnCollector:
    def __init__(self, timing: Callable[[], AppendTiming]) -> None:
        self._timing = timing

    def collect(self) -> Iterator[Metric]:
        t = self._timing()
        yield CounterMetricFamily("genovault_audit_appends",
                                  "audit appends that took the serial turn (failed ones too)",
                                  value=t.turns)
        yield CounterMetricFamily("genovault_audit_turn_wait_seconds",
                                  "wall time audit appends waited for their turn", value=t.wait_s)
        yield CounterMetricFamily("genovault_audit_turn_hold_seconds",
                                  "wall time audit appends held the turn (chain, synchronous "
                                  "write, anchor)", value=t.hold_s)


@dataclass
class Services:
    """Everything a request needs; built once per app by ``vault.api.app.build_services``."""

    settings: Settings
    store: Store
    query: QueryService
    guard: Guard
    vault_ready: Any  # () -> None, raises VaultDown
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        # read through the guard at each scrape: a test may give the guard another log
        self.metrics.watch_audit(lambda: self.guard.audit.timing)

    def readiness(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        t0 = time.monotonic()
        try:
            self.vault_ready()
            checks["vault"] = {"ok": True}
        except Exception as exc:  # report why, without secrets (project errors never hold any)
            checks["vault"] = {"ok": False, "why": _first_line(exc)}
        checks["vault"]["seconds"] = round(time.monotonic() - t0, 3)
        try:
            listing = self.store.scan()
            checks["store"] = {"ok": True, "datasets": len(listing.datasets)}
        except Exception as exc:
            checks["store"] = {"ok": False, "why": _first_line(exc)}
        self.metrics.cache_bytes.set(self.query.blocks.bytes)
        return checks


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
