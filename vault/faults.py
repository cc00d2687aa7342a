"""Named fault points at the commit boundaries of ingest and the key lifecycle (crash tests).

``point(name)`` sits right after a step that changes the store or Vault (a staging file
written, the batch folder renamed, the manifest signed, written, anchored, a key material
file re-wrapped, ...). Unarmed, it is a test of one module global and returns. Armed with

    GENOVAULT_FAULT_POINT=name[:n]

in the environment of a process, the process kills itself with SIGKILL the n-th time (default
1) it reaches point ``name``: no ``finally``, no ``atexit``, no flush — exactly what a power
cut or ``kill -9`` does at that moment. tests/reliability_ingest/ kills every operation at
every point and checks that the store is as before (or fully committed) and that a rerun
completes. docs/reliability-ingest.md lists the points.

This is the one place in ``vault/`` besides vault.settings that reads the environment, and
only once, at import: nothing a request to the API carries can arm it (the API never sets
environment variables, and an armed point only ever kills its own process). It is ignored
when ``GENOVAULT_ENV=production``.
"""

from __future__ import annotations

import os
import signal

ENV = "GENOVAULT_FAULT_POINT"

#: every point (the tests check each is reached by the operation that names it)
POINTS = (
    "ingest.marker_tmp_written",    # a pending marker's .tmp written and fsynced, not renamed
    "ingest.registration_started",  # pending marker written, registration thread running
    "ingest.registered",            # every sample registered (marker says complete)
    "store.file_written",           # a staging Parquet file (+ key material) made durable
    "ingest.info_written",          # the batch's info file written: staging complete
    "ingest.batch_renamed",         # the staging folder renamed into batches/
    "store.manifest_tmp_written",   # .manifest.json.tmp written and fsynced, not renamed
    "manifest.signed",              # the new manifest signed by Transit, not yet on disk
    "manifest.written",             # manifest.json replaced (committed), anchor not written
    "manifest.anchored",            # the anchor in Vault KV updated
    "ingest.committed",             # committed and anchored, pending marker not yet removed
    "rotate.key_rotated",           # one Transit key rotated (marker not yet written)
    "rotate.marker_written",        # .rotation.json written (the target versions)
    "rotate.rewrap_file",           # one key material file re-wrapped and replaced
    "rotate.retired",               # min_decryption_version raised (with --retire)
    "withdraw.checked",             # the ids found in the registry; nothing written yet
    "compact.batch_renamed",        # one rewritten batch folder renamed into batches/
    "compact.old_removed",          # one old batch folder deleted (after the commit)
    "compact.released",             # the removed samples' registry entries released
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value or os.environ.get("GENOVAULT_ENV") == "production":
        return None
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown fault point {name!r}; one of "
                         f"{', '.join(POINTS)}")
    n = int(count) if count else 1
    if n < 1:
        raise ValueError(f"{ENV}={value!r}: the count must be 1 or more")
    return name, n


_armed = _parse(os.environ.get(ENV))
_hits = 0


def point(name: str) -> None:
    """Kill this process with SIGKILL if it is armed for ``name`` and this is the n-th hit."""
    if _armed is None:
        return
    _hit(name)


def _hit(name: str) -> None:
    global _hits
    assert _armed is not None
    if name != _armed[0]:
        return
    _hits += 1
    if _hits == _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
