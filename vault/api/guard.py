"""The one path every answer takes: authenticate, decide, audit, compute with disclosure control.

Routes describe *what* is asked (a ``QueryRequest``) and *how* to compute it given the
decision's disclosure obligations; :meth:`Guard.run` does the rest, in this order:

1. the caller's credential -> Principal: a Vault token (looked up in Vault) or a GA4GH
   passport / visa (verified against the policy's trusted issuers; vault.api.auth); 401
   without a valid one, with the reason code (a refused visa's ``expired``,
   ``bad_signature`` …). Beacon routes may let a caller without a credential in as
   ``anonymous`` when the policy has a public role (Beacon's PUBLIC level);
2. ``decide(principal, request, policy)`` (pure; 403 when denied, and the same 404 as for an
   absent dataset when the dataset is not visible to the caller);
3. the policy's rate limit (429);
4. the computation, which applies the obligations (small cells, complementary suppression,
   minimum group size, rare variants); for a role whose obligations carry ``dp`` (the
   registered tier) the counts are noised first (vault.privacy.dp): the new cells' ε is
   debited from the principal's budget in the ledger before the noise is drawn, and an
   exhausted budget is refused (429 ``budget_exhausted``, audited);
5. one audit record of the whole request (principal, request, decision, outcome: status,
   rows, disclosure) is written and anchored **before** the answer leaves, under the
   ``query_id`` the answer carries; if it cannot be written the answer is withheld (503).
   Refusals (401/403/404/429) get their one record the same way. One request, one record.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from fastapi import HTTPException, Request

from vault.api.auth import Authenticated
from vault.api.ratelimit import RateLimiter
from vault.audit import AuditLog, AuditUnanchored
from vault.audit.log import new_query_id
from vault.audit.record import redact_token_like
from vault.errors import (
    ClusterQueryFailed,
    ConfigError,
    DatasetNotFound,
    VaultDown,
    VaultUnauthenticated,
)
from vault.passport.credential import CredentialRefused
from vault.policy.loader import PolicyStore, WatchedPolicyStore
from vault.policy.memo import DecisionMemo
from vault.policy.model import STATISTICS, Decision, DPParams, Principal, QueryRequest
from vault.privacy.dp import NOISE_RULES, DPSession
from vault.privacy.ledger import BudgetExhausted, Ledger
from vault.privacy.presence import PresenceParams
from vault.query.service import Disclosure

#: statistics the registered tier answers with noise; the others are refused for it
DP_ACTIONS = ("frequency", "genotype_counts", "hardy_weinberg", "missingness", "association",
              "presence")
#: the DP session of the request being computed (set by Guard.run, read by disclosure_of)
_SESSION: contextvars.ContextVar[DPSession | None] = contextvars.ContextVar(
    "genovault_dp_session", default=None)

#: reasons of a denial that mean "this dataset is not yours to see" (answered as absent)
_HIDDEN = ("dataset_not_visible", "consent_mismatch", "unknown_dataset")


@dataclass
class Outcome:
    """What a computation returns: the answer body and how many rows it holds."""

    body: dict[str, Any]
    rows: int


def disclosure_of(decision: Decision) -> Disclosure:
    ob = decision.obligations
    assert ob is not None
    rare = getattr(ob, "rare_variant", None) or {}
    mode = rare.get("mode") if isinstance(rare, dict) else getattr(rare, "mode", None)
    max_ac = rare.get("max_ac") if isinstance(rare, dict) else getattr(rare, "max_ac", None)
    d = Disclosure(k=int(ob.k), min_group_size=int(ob.min_group_size), tier=str(ob.tier),
                   rare_max_ac=int(max_ac) if mode == "suppress" and max_ac else None)
    session = _SESSION.get()
    return replace(d, noise=session) if session is not None else d


def policy_info(decision: Decision) -> dict[str, Any]:
    return {"role": decision.role, "policy_version": decision.policy_version,
            "rules": list(decision.matched_rules)}


def _hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


class Guard:
    """Authentication, the policy decision, rate limits and the audit trail, in one place."""

    def __init__(self, authenticate: Callable[[str], Authenticated],
                 policies: PolicyStore | WatchedPolicyStore,
                 audit: AuditLog, limiter: RateLimiter | None = None,
                 ledger: Ledger | None = None) -> None:
        self.authenticate = authenticate
        self.policies = policies
        self.audit = audit
        self.limiter = limiter or RateLimiter()
        self.ledger = ledger
        #: ``decide`` is pure: its answer per (principal, request, policy) is remembered
        self.decisions = DecisionMemo()
        #: held open by the one API process serving this home (vault.privacy.recovery)
        self.serving_lock: Any = None

    # -- authentication --------------------------------------------------------------------
    def principal(self, request: Request, *, anonymous: bool = False) -> Principal:
        """The caller; ``anonymous``: without a credential, the anonymous principal if the
        policy has a public role (else 401 as always)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header.strip() and anonymous and self.policies.current().public_roles:
            request.state.credential = {"kind": "none"}
            return Principal.anonymous()
        if scheme.lower() != "bearer" or not token.strip():
            self._deny_unauthenticated(request, "no_token")
        try:
            auth = self.authenticate(token.strip())
        except CredentialRefused as exc:
            request.state.credential = {"kind": "jwt", "claimed": exc.claimed,
                                        **({"refused_visas": exc.visas} if exc.visas else {})}
            self._deny_unauthenticated(request, exc.reason, exc.message)
        except VaultUnauthenticated:
            self._deny_unauthenticated(request, "token_rejected")
        except VaultDown as exc:
            raise HTTPException(503, detail="Vault is unreachable or sealed; retry later") \
                from exc
        request.state.credential = auth.credential
        return auth.principal

    def _deny_unauthenticated(self, request: Request, reason: str,
                              why: str | None = None) -> NoReturn:
        qid = self._record(request, None, None, None, {"status": 401, "reasons": [reason]})
        if why is None:
            detail = ("a valid Vault token or GA4GH passport is required (Authorization: "
                      "Bearer <token>); log in with `genovault login`")
            challenge = "Bearer"
        else:  # a passport or visa that was refused: say which check failed
            detail = f"the passport or visa was refused ({reason}): {why}"
            challenge = f'Bearer error="invalid_token", error_description="{reason}"'
        raise HTTPException(401, detail=detail,
                            headers={"WWW-Authenticate": challenge, "X-Query-Id": qid})

    # -- the whole path --------------------------------------------------------------------
    def run(self, request: Request, qreq: QueryRequest,
            compute: Callable[[Decision], Outcome],
            body: dict[str, Any] | None = None, *, anonymous: bool = False) -> dict[str, Any]:
        """``body``: what the route understood of a request body, for the audit record;
        ``anonymous``: a caller without a credential gets the policy's public role, if any
        (Beacon routes only)."""
        request.state.audit_body = body
        principal = self.principal(request, anonymous=anonymous)
        request.state.principal = principal
        policy = self.policies.current()
        decision = self.decisions.decide(principal, qreq, policy)
        if not decision.allowed:
            hidden = any(r.startswith(_HIDDEN) for r in decision.reasons)
            status = 404 if hidden else 403
            qid = self._record(request, principal, qreq, decision,
                               {"status": status, "reasons": list(decision.reasons)})
            if hidden:
                raise HTTPException(404, detail=_not_found(qreq.dataset),
                                    headers={"X-Query-Id": qid})
            raise HTTPException(403, detail="the policy does not allow this request: "
                                + ", ".join(decision.reasons), headers={"X-Query-Id": qid})
        dp_params = decision.obligations.dp if decision.obligations is not None else None
        if dp_params is not None and qreq.action in STATISTICS and (
                qreq.action not in DP_ACTIONS or self.ledger is None):
            # fail closed: this statistic has no noisy version (or no ledger is configured)
            why = f"dp_unsupported:{qreq.action}" if self.ledger is not None \
                else "dp_unavailable"
            qid = self._record(request, principal, qreq, decision,
                               {"status": 403, "reasons": [why]})
            raise HTTPException(403, detail=f"{why}: the policy requires differential privacy "
                                "for this role and this statistic has no noisy version; "
                                "nothing was answered", headers={"X-Query-Id": qid})
        limit = getattr(decision.obligations, "rate_limit", None)
        if limit:
            n = limit["requests"] if isinstance(limit, dict) else limit.requests
            per = limit["per_seconds"] if isinstance(limit, dict) else limit.per_seconds
            wait = self.limiter.allow(_rate_key(request, principal), decision.role or "",
                                      int(n), float(per))
            if wait is not None:
                qid = self._record(request, principal, qreq, decision,
                                   {"status": 429, "reasons": ["rate_limited"]})
                raise HTTPException(429, detail=f"rate limit of {n} requests per {per:g} s "
                                    "reached; retry later",
                                    headers={"Retry-After": str(int(wait) + 1),
                                             "X-Query-Id": qid})
        qid = new_query_id()
        payload = self._payload(request, principal, qreq, decision)
        session: DPSession | None = None
        if dp_params is not None and qreq.action in STATISTICS:
            assert self.ledger is not None
            session = DPSession(self.ledger, _budget_key(principal),
                                float(dp_params.epsilon_per_query), float(dp_params.budget),
                                int(dp_params.period_days), role=decision.role,
                                display_name=principal.display_name, dataset=qreq.dataset,
                                query_id=qid, presence=_presence_params(dp_params))
        token = _SESSION.set(session)

        def failed(status: int, reason: str) -> None:
            # a failure after a partial debit (one partition charged, the next one failed)
            # says what was charged, so that the audit trail adds up to the ledger
            outcome: dict[str, Any] = {"status": status, "reasons": [reason]}
            if session is not None and session.spent:
                outcome["dp"] = session.summary()
            self._complete(payload, qid, outcome)

        try:
            outcome = compute(decision)
        except BudgetExhausted as exc:
            self._complete(payload, qid, {"status": 429, "reasons": ["budget_exhausted"],
                                          "dp": {**(session.summary() if session else {}),
                                                 "epsilon_needed": round(exc.cost, 9)}})
            wait = max(0.0, exc.resets_at - time.time())
            raise HTTPException(429, detail=f"budget_exhausted: {exc}; the budget resets in "
                                f"{wait / 86400:.1f} days; nothing was answered",
                                headers={"X-Query-Id": qid, "Retry-After": str(int(max(
                                    1, wait)))}) from exc
        except DatasetNotFound as exc:
            failed(404, "absent")
            raise HTTPException(404, detail=_not_found(qreq.dataset),
                                headers={"X-Query-Id": qid}) from exc
        except ConfigError as exc:
            failed(400, "bad_request")
            raise HTTPException(400, detail=str(exc), headers={"X-Query-Id": qid}) from exc
        except VaultDown as exc:
            failed(503, "vault_down")
            raise HTTPException(503, detail="Vault is unreachable or sealed; retry later",
                                headers={"X-Query-Id": qid}) from exc
        except ClusterQueryFailed as exc:  # a worker left, its credential expired ...
            failed(503, "cluster_failed")
            raise HTTPException(503, detail=f"{exc} (cluster_failed)",
                                headers={"X-Query-Id": qid, "Retry-After": "1"}) from exc
        except Exception as exc:  # GenoVaultError or a bug: the record says it failed
            failed(500, type(exc).__name__)
            raise HTTPException(500, detail="the query failed on the server side; the "
                                "operators have the details in the audit trail",
                                headers={"X-Query-Id": qid}) from exc
        finally:
            _SESSION.reset(token)
        body = {**outcome.body, "query_id": qid, "policy": policy_info(decision)}
        if session is not None:
            d = dict(body.get("disclosure") or {})
            d.update(session.summary())
            d["rules"] = [*d.get("rules", []), *NOISE_RULES]
            body["disclosure"] = d
        # the one record of this request, on disk and anchored before the answer leaves
        try:
            self._complete(payload, qid, {"status": 200, "rows": outcome.rows,
                                          "disclosure": _disclosure_summary(body)})
        except HTTPException as exc:
            # withheld: nothing drawn for this answer was released, so its charge is undone
            # (else a sealed Vault would spend budgets on answers nobody got) -- unless its
            # record stays in the log (written, anchor not confirmed): then the charge stays
            # with it, so that the ledger and the audit trail agree
            if session is not None and session.spent and self.ledger is not None and \
                    not isinstance(exc.__cause__, AuditUnanchored):
                self.ledger.refund(qid)
            raise
        return released(body)

    def _complete(self, payload: dict[str, Any], qid: str, result: dict[str, Any]) -> None:
        """The request's one audit record; if it cannot be written nothing is answered.
        Token-like strings (a caller's parameter or unverified claim) are recorded withheld:
        refused by the log's payload guard, they left the request without any record."""
        try:
            self.audit.append(redact_token_like({**payload, "result": result}), query_id=qid)
        except Exception as exc:  # fail closed: no record, no answer
            raise HTTPException(503, detail="the audit trail cannot be written; nothing was "
                                "answered", headers={"X-Query-Id": qid}) from exc

    def _payload(self, request: Request, principal: Principal | None,
                 qreq: QueryRequest | None, decision: Decision | None) -> dict[str, Any]:
        return {
            "principal": None if principal is None else {
                "entity_id": principal.entity_id, "display_name": principal.display_name,
                "role": decision.role if decision else None,
                **({} if principal.auth == "vault-token" else {"auth": principal.auth}),
                **({"visas": [v.summary() for v in principal.visas]} if principal.visas
                   else {})},
            **({"credential": request.state.credential}
               if getattr(request.state, "credential", None) else {}),
            "request": {"method": request.method, "path": request.url.path,
                        "action": qreq.action if qreq else None,
                        "dataset": qreq.dataset if qreq else None,
                        "params": _safe_params(request),
                        "body": getattr(request.state, "audit_body", None)},
            "decision": None if decision is None else {
                "allowed": decision.allowed, "reasons": list(decision.reasons),
                "rules": list(decision.matched_rules),
                "policy_version": decision.policy_version},
            "client": {"remote": _hash(request.client.host) if request.client else None},
        }

    def _record(self, request: Request, principal: Principal | None, qreq: QueryRequest | None,
                decision: Decision | None, outcome: dict[str, Any]) -> str:
        """The one record of a request refused before any work; its query id."""
        qid = new_query_id()
        self._complete(self._payload(request, principal, qreq, decision), qid, outcome)
        return qid


#: disclosure counts that go to the audit record only, never to the caller: each counts
#: stored variants that the answer does not list (rare ones, or ones a site filter dropped),
#: so over a region of one position or a list of one variant it says whether the cohort holds
#: a variant that no answer may show (a carrier of a rare allele is in the cohort)
AUDIT_ONLY = ("omitted_variants",)
AUDIT_ONLY_FILTER = ("variants_considered", "variants_excluded")


def released(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the disclosure counts that only the audit record keeps
    (:data:`AUDIT_ONLY`, :data:`AUDIT_ONLY_FILTER`)."""
    d = body.get("disclosure")
    if not isinstance(d, dict):
        return body
    d = {k: v for k, v in d.items() if k not in AUDIT_ONLY}
    sf = d.get("site_filter")
    if isinstance(sf, dict):
        d["site_filter"] = {k: v for k, v in sf.items() if k not in AUDIT_ONLY_FILTER}
    return {**body, "disclosure": d}


def _rate_key(request: Request, principal: Principal) -> str:
    """Whose requests a rate limit counts: the principal's; anonymous callers per client
    address (hashed)."""
    if principal.auth == "anonymous":
        return "anonymous:" + _hash(request.client.host if request.client else "")
    return principal.entity_id or principal.display_name


def _budget_key(principal: Principal) -> str:
    """Whose privacy budget pays: the principal's; every anonymous caller shares one budget
    (a new address must not buy a new budget)."""
    if principal.auth == "anonymous":
        return "anonymous:all"
    return principal.entity_id or principal.display_name


def _presence_params(dp_params: DPParams) -> PresenceParams | None:
    """The policy's ``dp.presence`` (a PresenceControl, as the loader builds it) as
    vault.privacy.presence.PresenceParams, or None."""
    pres = dp_params.presence
    if pres is None:
        return None
    return PresenceParams(float(pres.member_budget_nats), float(pres.noise_scale),
                          float(pres.margin_sd), str(pres.count))


def not_found(dataset: str | None) -> str:
    """The one message of an absent or hidden dataset (they must read alike)."""
    return _not_found(dataset)


def _not_found(dataset: str | None) -> str:
    return f"no dataset {dataset!r} (or it is not visible to you)"


_PARAMS = ("region", "group_by", "limit", "cursor", "phenotype", "case", "control",
           "window_variants", "window_bp", "min_r2", "folded", "chrom", "pos", "ref", "alt",
           "variant", "filter", "format", "part", "reference")


def _safe_params(request: Request) -> dict[str, str]:
    """The request's known query parameters for the audit record, values capped in length
    (unknown names are dropped: the record holds what the API understood)."""
    return {k: v[:200] for k, v in request.query_params.items() if k in _PARAMS}


def _disclosure_summary(body: dict[str, Any]) -> dict[str, Any]:
    d = body.get("disclosure") or {}
    return {k: d.get(k) for k in ("tier", "k", "min_group_size", "kind", "suppressed_cells",
                                  "complementary_cells", "rare_variant_cells",
                                  "omitted_variants", "refused_groups", "noise",
                                  "epsilon_per_query", "noise_scale", "epsilon_spent",
                                  "epsilon_remaining", "epsilon_budget", "new_cells",
                                  "reused_cells", "presence_threshold", "presence_control",
                                  "presence_noise", "presence_noise_scale",
                                  "presence_count", "member_budget_nats", "presence_epsilon",
                                  "site_filter")
            if k in d}
