"""The signing-key pin is written atomically: a failing write (a full disk) leaves the old
pin and no temporary file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vault.keys import signing


def test_write_pins__failing_fsync_leaves_old_pin_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signing._write_pins(tmp_path, {1: "b2xk"})
    before = (tmp_path / signing.PIN_DIR / signing.PIN_FILE).read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        signing._write_pins(tmp_path, {1: "b2xk", 2: "bmV3"})
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / signing.PIN_DIR).iterdir()) == [signing.PIN_FILE]
    assert (tmp_path / signing.PIN_DIR / signing.PIN_FILE).read_bytes() == before
