"""An ingest's sample registration, running in the background while the file is parsed.

Registering 5,000 samples is 5,000 requests to Vault's sample registry (see
vault.keys.registry): seconds that used to pass before parsing even started. Now a thread
registers while the main thread parses and writes into the staging folder, and the ingest
checks on it between chunks. The guarantees stay those of a registration done first:

* the pending marker ``.pending/<source sha256>`` holds the dataset uid before the first
  request and ``<uid> complete`` only once every sample is registered without a duplicate;
  on a rerun only a ``complete`` marker lets the same file take its entries back, and one
  killed during registration is refused with a hint (docs/format.md);
* a duplicate (or a Vault failure) aborts the ingest at the next chunk with the same error;
* nothing is committed before :meth:`Registration.finish` returned (the caller calls it
  before renaming the staging folder into place);
* a failed ingest stops the thread, waits for it, and deletes exactly the entries this run
  created (all of them when it took back an earlier complete run of the same file); when
  Vault cannot be reached for that, the marker stays.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from vault.errors import GenoVaultError, SampleSheetError
from vault.keys import registry
from vault.keys.client import VaultClient
from vault.store.dataset import DIR_MODE
from vault.store.fsutil import atomic_write_text


def write_marker(path: Path, *words: str) -> None:
    """Durably and atomically (re)write a pending-registration marker: the dataset uid and
    its state. A kill at any moment leaves the old marker (or none) or the new one, never an
    empty or partial one: an empty marker would lose the uid its registrations were made
    under (so they could never be released) and the ``complete`` state. A leftover temporary
    file (``.<name>.tmp``) is never taken for a marker; `Store.remove_debris` deletes it."""
    atomic_write_text(path, " ".join(words), encoding="ascii",
                      fault="ingest.marker_tmp_written")


class Registration:
    """``start()`` the thread; ``check()`` between chunks; ``finish()`` before the commit,
    ``done()`` after it; ``release()`` on any failure (after which the object is spent)."""

    def __init__(self, client: VaultClient, dataset: str, pending: Path, uid: str | None,
                 source: Path) -> None:
        self.client = client
        self.dataset = dataset
        self.pending = pending
        self.source = source
        self.had_marker = pending.is_file()
        words = pending.read_text(encoding="ascii").split() if self.had_marker else []
        #: only a registration that went through completely (and so found no duplicate) may
        #: be taken for our own on a rerun
        self.resumed = self.had_marker and words[1:] == ["complete"]
        self.uid: str = (words[0] if words else None) or uid or uuid.uuid4().hex
        self.pseudonyms: Sequence[str] = ()
        #: seconds the registration thread took (None while it runs)
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outcome: registry.Outcome | None = None
        self._error: BaseException | None = None

    # -- the thread ----------------------------------------------------------------------
    def start(self, pseudonyms: Sequence[str]) -> None:
        """Write the marker (the uid: registration begun), then register in the background."""
        self.pseudonyms = pseudonyms
        self.pending.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        if not self.resumed:
            write_marker(self.pending, self.uid)
        self._thread = threading.Thread(target=self._run, name="genovault-registration",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            out = registry.create_entries(self.client, self.dataset, self.uid, self.pseudonyms,
                                          self._stop)
            self._outcome = out
            if out.error is not None:
                self._error = out.error
            elif not out.complete:  # stopped by release(): the ingest failed already
                pass
            elif out.present and not self.resumed:
                self._error = self._duplicates(out.present)
            elif not self.resumed:
                write_marker(self.pending, self.uid, "complete")
        except BaseException as exc:  # reported by check()/finish(), never lost
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - t0

    def _duplicates(self, present: list[int]) -> SampleSheetError:
        shown = ", ".join(str(i + 10) for i in present[:5])
        interrupted = self.had_marker and not self.resumed
        return SampleSheetError(
            f"{self.source}: {len(present)} sample(s) are already in dataset "
            f"{self.dataset!r}; VCF #CHROM columns {shown}"
            f"{' …' if len(present) > 5 else ''}. A sample can be ingested only once."
            + (" (An earlier ingest of this file was interrupted while registering its "
               "samples, so its registrations cannot be told from duplicates: an admin "
               "must release them; see docs/format.md.)" if interrupted else ""))

    # -- the ingest's side ---------------------------------------------------------------
    def check(self) -> None:
        """Raise the registration's failure (duplicate, Vault error) if it has one yet."""
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Wait until every sample is registered (marker ``complete``), or raise why not."""
        assert self._thread is not None, "start() first"
        self._thread.join()
        self.check()
        if self._outcome is None or not self._outcome.complete:  # pragma: no cover
            raise AssertionError("registration stopped without a failure")

    def done(self) -> None:
        """After the commit: the registrations belong to the committed batch for good."""
        self.pending.unlink()

    def release(self) -> None:
        """After a failure: stop registering, wait, and delete this run's own entries.

        Those are the ones this run created; after a rerun that took back an earlier
        complete registration of the same file, all of the file's. The marker goes only when
        no entry of unknown ownership is left behind: none whose request failed, and, after
        an interrupted earlier run (marker without ``complete``), none not seen through.
        Vault unreachable: best effort, the marker stays.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        out = self._outcome
        if self.resumed:
            mine: Sequence[str] = self.pseudonyms
            clean = True
        elif out is None:  # the thread failed before any answer: nothing known, keep it
            return
        else:
            mine = [self.pseudonyms[i] for i in out.created]
            clean = out.error is None and (
                not self.had_marker or (out.complete and not out.present))
        with contextlib.suppress(GenoVaultError):  # Vault down: the marker stays
            registry.release(self.client, self.dataset, self.uid, mine)
            if clean:
                self.pending.unlink(missing_ok=True)
