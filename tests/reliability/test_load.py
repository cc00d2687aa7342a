"""The load benchmark's correctness invariants at CI size (benchmarks/load.py; timing is the
benchmark's business, not asserted here)."""

from __future__ import annotations

import pytest

from benchmarks.load import load_and_check
from tests.reliability.conftest import DP_BUDGET
from tests.support.served import Served

pytestmark = pytest.mark.integration


def test_load__invariants_hold_under_concurrency(healthy: Served) -> None:
    out = load_and_check(healthy, clients=10, seconds=5, reask=40, dp_budget=DP_BUDGET)
    assert out["requests"] > 50, out
    assert out["errors"] == 0, out["error_examples"]
    # every kind of refusal was met, and the budgets ran out (429) while answering
    refused = {k.split(":")[0] for k in out["refusals"]}
    assert {"401", "403", "404", "429"} <= refused, out["refusals"]
    assert out["audit_complete"], {k: v for k, v in out.items() if k.startswith("audit")}
    assert out["ledger_consistent"], out["ledger_problems"] or out["ledger_over_budget"]
    assert out["answers_stable"], out["reask_diffs"]
    # the exported audit-turn counters saw every request of the run take its turn once
    turn = out["audit_turn"]
    assert turn["appends"] == out["requests"], turn
    assert 0 < turn["utilisation"] <= 1 and turn["hold_ms"] > 0 and turn["wait_ms"] >= 0, turn
