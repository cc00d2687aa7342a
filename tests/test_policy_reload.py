"""Policy files reload by themselves; a broken edit keeps the policy in force."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from vault.policy import PolicyStore, QueryRequest, decide
from vault.policy.model import Principal

SHIPPED = Path(__file__).resolve().parents[1] / "policies" / "access" / "genovault.yaml"
A = Principal("e-a", "researcher-a", ("genovault-researcher-a",))
BY_POP = QueryRequest("frequency", "demo", ("population",))


def test_policy_reload__edit_applies_and_broken_edit_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "genovault.yaml"
    shutil.copy(SHIPPED, path)
    errors: list[Exception] = []
    store = PolicyStore(path).watch(every_s=0.05, on_error=errors.append)
    v1 = store.current().version
    assert decide(A, BY_POP, store.current()).allowed
    # an admin removes population from researcher-a's group-by columns
    text = path.read_text().replace("group_by: [population, sex, phenotype]",
                                    "group_by: [sex, phenotype]")
    path.write_text(text)
    time.sleep(0.1)
    policy = store.current()
    assert policy.version != v1
    d = decide(A, BY_POP, policy)
    assert not d.allowed and d.policy_version == policy.version
    # a broken edit: the last good policy stays, the error is reported
    path.write_text(text + "\nroles: [this is not a mapping\n")
    time.sleep(0.1)
    assert store.current().version == policy.version
    assert errors and store.last_error is not None
