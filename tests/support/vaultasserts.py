"""Assertions about Vault's answers shared by the tests of policies and rights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hvac.exceptions
import pytest


def forbidden(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` is refused by Vault with 403 (a right the token lacks)."""
    with pytest.raises(hvac.exceptions.Forbidden):
        fn(*args, **kwargs)
