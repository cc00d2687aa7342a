"""The API's remembered policy decisions (vault.policy.memo): the same Decision as
``decide`` every time, a reloaded policy decides afresh, passports are never remembered."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from vault.policy import PolicyStore, decide
from vault.policy.memo import DecisionMemo
from vault.policy.model import Principal, QueryRequest

POLICY = Path(__file__).with_name("policy.yaml")

PRINCIPALS = [
    Principal("ent-a", "researcher-a", ("genovault-researcher-a",)),
    Principal("ent-b", "researcher-b", ("genovault-researcher-b",)),
    Principal("ent-x", "auditor", ("genovault-auditor",)),
    Principal("ent-n", "nobody", ("some-unrelated-policy",)),
    Principal("ent-a", "researcher-a", ("genovault-researcher-a",), metadata={"org": "x"}),
    Principal.anonymous(),
]
REQUESTS = [
    QueryRequest("frequency", "demo"),
    QueryRequest("frequency", "demo", group_by=("population",)),
    QueryRequest("frequency", "demo", group_by=("ancestry",)),
    QueryRequest("presence", "demo"),
    QueryRequest("sql", "demo"),
    QueryRequest("frequency", "ceu"),
    QueryRequest("frequency", "nope"),
    QueryRequest("frequency", "demo", filters=("population=pop1",)),
]


def _store(tmp_path: Path, drop_researcher_a: bool = False) -> PolicyStore:
    data = yaml.safe_load(POLICY.read_text())
    if drop_researcher_a:
        data["principals"] = [p for p in data["principals"]
                              if p["match"].get("vault_policy") != "genovault-researcher-a"]
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    (folder / "genovault.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return PolicyStore(folder)


def test_decision_memo__same_decision_as_decide_for_every_pair(tmp_path: Path) -> None:
    policy = _store(tmp_path).current()
    memo = DecisionMemo()
    pairs = list(itertools.product(PRINCIPALS, REQUESTS))
    for _ in range(2):  # the first pass decides, the second remembers
        for principal, request in pairs:
            assert memo.decide(principal, request, policy) == decide(principal, request, policy)
    assert memo.misses == len(pairs) and memo.hits == len(pairs)
    allowed = [memo.decide(p, r, policy).allowed for p, r in pairs]
    assert any(allowed) and not all(allowed)  # the table holds both kinds


def test_decision_memo__a_reloaded_policy_decides_afresh(tmp_path: Path) -> None:
    store = _store(tmp_path)
    memo = DecisionMemo()
    who, what = PRINCIPALS[0], QueryRequest("frequency", "demo", group_by=("population",))
    assert memo.decide(who, what, store.current()).allowed
    assert memo.decide(who, what, store.current()).allowed
    restricted = _store(tmp_path, drop_researcher_a=True)  # the files change; a new Policy
    assert store.reload() is None
    assert store.current() is not restricted.current()
    refused = memo.decide(who, what, store.current())
    assert not refused.allowed and "no_role" in refused.reasons
    assert memo.decide(who, what, store.current()) == refused


def test_decision_memo__bounded_and_keyed_by_the_whole_principal(tmp_path: Path) -> None:
    policy = _store(tmp_path).current()
    memo = DecisionMemo(size=3)
    what = QueryRequest("frequency", "demo")
    for i in range(10):
        memo.decide(Principal(f"ent-{i}", f"u{i}", ("genovault-researcher-a",)), what, policy)
    assert len(memo._memo) == 3
    a = Principal("ent-z", "z", ("genovault-researcher-a",))
    other_policies = Principal("ent-z", "z", ("some-unrelated-policy",))
    assert memo.decide(a, what, policy).allowed
    assert not memo.decide(other_policies, what, policy).allowed  # not a's answer


def test_decision_memo__passport_principals_are_never_remembered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vault.policy.memo as memo_mod
    from vault.policy.model import VisaAssertion

    policy = _store(tmp_path).current()
    calls = []
    real = memo_mod.decide

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(memo_mod, "decide", counting)
    visa = VisaAssertion(iss="https://issuer.example", sub="someone",
                         type="ControlledAccessGrants", value="https://example/demo",
                         source="https://example", asserted=1, exp=2**40)
    passport = Principal("", "visa-holder", (), auth="passport", visas=(visa,))
    memo = DecisionMemo()
    for _ in range(3):
        memo.decide(passport, QueryRequest("frequency", "demo"), policy)
    assert len(calls) == 3 and memo.hits == 0
