"""A vectorisable exp for the per-sample Newton passes, and the LLVM intrinsics it is built on.

numba's ``math.exp`` is a call into libm, which keeps LLVM from turning the loop around it into
SIMD code; ``_exp`` below is plain arithmetic (within 1 ulp of libm, tested). ``_fdiv`` is an
IEEE division without numba's ZeroDivisionError branch, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from kernels.jit import jit


@intrinsic
def _bits_to_float_intrinsic(typingctx: Any, x: Any) -> Any:
    """Reinterpret the bits of an int64 as a float64 (one register move; vectorises)."""
    if x != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _fdiv_intrinsic(typingctx: Any, a: Any, b: Any) -> Any:
    """a / b as one IEEE division. numba's ``/`` adds a ZeroDivisionError branch, which keeps
    LLVM from vectorising the loop around it; here the divisor is always >= 1."""
    if a != types.float64 or b != types.float64:
        return None
    sig = types.float64(types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fdiv(args[0], args[1])

    return sig, codegen


@intrinsic
def _fma_intrinsic(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """a * b + c rounded once (llvm.fma: one instruction with FMA3/AVX-512; vectorises)."""
    if a != types.float64 or b != types.float64 or c != types.float64:
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return sig, codegen


# Typed aliases for callers (numba resolves the intrinsic objects themselves).
_bits_to_float = cast(Callable[[Any], float], _bits_to_float_intrinsic)
_fdiv = cast(Callable[[float, float], float], _fdiv_intrinsic)
_fma = cast(Callable[[float, float, float], float], _fma_intrinsic)


# exp(x) = 2^k * exp(r), k = round(x / ln 2), |r| <= ln(2) / 2, ln 2 split in two parts
# (fdlibm's) so that k * ln2_hi is exact; exp(r) by its Taylor polynomial to degree 13
# (truncation < 5e-18 relative). Within 1 ulp of libm's exp over |x| <= 708 (tested), and,
# unlike a call to libm, LLVM turns the loop around it into SIMD code.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + _ROUND - _ROUND rounds x to an integer
_EXP_LIMIT = 708.0
_C2 = 1.0 / 2.0
_C3 = 1.0 / 6.0
_C4 = 1.0 / 24.0
_C5 = 1.0 / 120.0
_C6 = 1.0 / 720.0
_C7 = 1.0 / 5040.0
_C8 = 1.0 / 40320.0
_C9 = 1.0 / 362880.0
_C10 = 1.0 / 3628800.0
_C11 = 1.0 / 39916800.0
_C12 = 1.0 / 479001600.0
_C13 = 1.0 / 6227020800.0


@jit()
def _exp(x: float) -> float:
    """exp(x) for x clamped to [-708, 708] (see above); vectorisable."""
    x = min(max(x, -_EXP_LIMIT), _EXP_LIMIT)
    k = (x * _LOG2E + _ROUND) - _ROUND
    r = _fma(-k, _LN2_LO, _fma(-k, _LN2_HI, x))
    q = _C13
    q = _fma(q, r, _C12)
    q = _fma(q, r, _C11)
    q = _fma(q, r, _C10)
    q = _fma(q, r, _C9)
    q = _fma(q, r, _C8)
    q = _fma(q, r, _C7)
    q = _fma(q, r, _C6)
    q = _fma(q, r, _C5)
    q = _fma(q, r, _C4)
    q = _fma(q, r, _C3)
    q = _fma(q, r, _C2)
    q = _fma(q, r, 1.0)
    q = _fma(q, r, 1.0)
    return q * _bits_to_float((np.int64(k) + 1023) << 52)
