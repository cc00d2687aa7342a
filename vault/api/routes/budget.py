"""``GET /v1/budget``: the caller's privacy budget (ε spent and left in this period)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request

from vault.api import models as m
from vault.api.deps import ServicesDep
from vault.api.guard import Outcome
from vault.policy import decide
from vault.policy.model import QueryRequest
from vault.privacy.ledger import period_bounds

router = APIRouter(prefix="/v1", tags=["budget"])


@router.get("/budget", response_model=m.BudgetAnswer, summary="your privacy budget")
def budget(request: Request, services: ServicesDep) -> dict[str, Any]:
    qreq = QueryRequest(action="budget_read")

    def compute(decision: Any) -> Outcome:
        principal = request.state.principal
        who = principal.entity_id or principal.display_name
        policy = services.guard.policies.current()
        # the DP settings of the role that answers this principal's statistics
        dp_role, dp = None, None
        for ds in policy.datasets:
            d = decide(principal, QueryRequest("frequency", ds), policy)
            if d.allowed and d.obligations is not None:
                dp_role, dp = d.role, d.obligations.dp
                break
        ledger = services.guard.ledger
        period = int(dp.period_days) if dp else 30
        spent = ledger.spent(who, period) if ledger is not None else 0.0
        _, end = period_bounds(ledger.clock() if ledger else 0.0, period)
        use = {"role": dp_role, "mechanism": dp.mechanism if dp else None,
               "epsilon_per_query": dp.epsilon_per_query if dp else None,
               "epsilon_budget": dp.budget if dp else None,
               "budget_period_days": dp.period_days if dp else None,
               "epsilon_spent": round(spent, 9),
               "epsilon_remaining": round(max(0.0, dp.budget - spent), 9) if dp else None,
               "period_resets_at": dt.datetime.fromtimestamp(end, dt.UTC).isoformat()
               if dp else None}
        return Outcome({"principal": principal.display_name, "budget": use}, 1)

    return services.guard.run(request, qreq, compute)
