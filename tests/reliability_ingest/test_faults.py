"""The fault-point hook: unarmed it does nothing, armed it SIGKILLs at the n-th hit, it refuses
unknown names, is ignored in production, and every point is exercised by a kill test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.reliability_ingest import test_kill_ingest, test_kill_lifecycle
from tests.reliability_ingest.support import REPO
from vault import faults

CHILD = ("from vault import faults\n"
         "for i in range(3):\n"
         "    faults.point('manifest.written')\n"
         "    print(i, flush=True)\n")


def _run(value: str | None,
         env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENOVAULT_")}
    if value is not None:
        env[faults.ENV] = value
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=60, check=False)


def test_faults__unarmed_point_does_nothing() -> None:
    r = _run(None)
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2"]
    assert faults._armed is None  # this test process is not armed


def test_faults__armed_point_kills_at_the_nth_hit() -> None:
    r = _run("manifest.written:2")
    assert r.returncode == -signal.SIGKILL and r.stdout.split() == ["0"]
    r = _run("manifest.signed")  # another point: never reached here
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2"]


def test_faults__unknown_point_fails_at_start_and_production_ignores_it() -> None:
    r = _run("no.such.point")
    assert r.returncode != 0 and "unknown fault point" in r.stderr
    with pytest.raises(ValueError, match="count"):
        faults._parse("manifest.written:0")
    r = _run("manifest.written", {"GENOVAULT_ENV": "production"})
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2"]


def test_faults__every_point_is_killed_at_by_a_test() -> None:
    used = set(test_kill_ingest.STAGES) | {test_kill_ingest.MARKER_POINT}
    for stages in test_kill_lifecycle.STAGES.values():
        used |= set(stages)
    assert used == set(faults.POINTS)
