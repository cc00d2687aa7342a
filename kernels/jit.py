"""The one place that sets the project's numba defaults, plus small bit-level intrinsics."""

from __future__ import annotations

import os

# numba's default threading layer here is OpenMP, whose idle workers spin for a while after
# every parallel region. On a machine with two (virtual) cores that spinning steals the core
# the next step needs (measured: the ingest parser ran 3-4x slower). Passive waiting costs a
# few microseconds per parallel region instead. Set before numba first loads the OpenMP
# runtime; an explicit OMP_WAIT_POLICY from the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
from numba import types
from numba.extending import intrinsic

F = TypeVar("F", bound=Callable[..., Any])

# Defaults for every kernel: compiled without the Python object layer, releasing the GIL so
# the service can run kernels from threads, cached on disk so a restart does not recompile.
_DEFAULTS: dict[str, Any] = {"nopython": True, "nogil": True, "cache": True}


def jit(
    *, parallel: bool = False, fastmath: bool = False, inline: str = "never"
) -> Callable[[F], F]:
    """Decorate a kernel with the project defaults (nopython, nogil, cache=True).

    ``parallel=True`` enables ``numba.prange``; ``fastmath`` is off by default because the
    statistics must match the reference tools bit for bit where they can. ``inline`` is
    numba's IR-level inlining option (``"never"``, numba's default, or ``"always"`` for a
    small helper that must be inlined into its callers before type inference).
    """

    def wrap(fn: F) -> F:
        options = dict(_DEFAULTS, parallel=parallel, fastmath=fastmath, inline=inline)
        return cast(F, numba.jit(**options)(fn))

    return wrap


@intrinsic
def _popcount64(typingctx: Any, x: Any) -> Any:
    """Population count of a uint64 (LLVM ``ctpop``; one POPCNT instruction on x86-64)."""
    if x != types.uint64:
        return None
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


# Typed alias for callers (numba resolves the intrinsic object itself).
popcount64 = cast(Callable[[Any], int], _popcount64)
