"""Device functions the generated interpreter calls: dtype-dispatched element access
and the scalar helpers that instruction expressions in ``gint.isa`` name.

Written once as plain Python over numpy scalar types, so the same source compiles
with Numba for the GPU and runs as-is under the simulator. Arithmetic stays float32
throughout: numpy scalars keep float32 in the simulator as Numba does on the GPU.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from gint.abi import DT_BF16, DT_F16, DT_F32, DT_I32, DT_I64
from gint.kernel.memory import (
    bits_to_f32,
    f16_bits_to_f32,
    f32_to_bits,
    f32_to_f16_bits,
    load_f32,
    load_i32,
    load_i64,
    load_u8,
    load_u16,
    store_f32,
    store_i32,
    store_i64,
    store_u8,
    store_u16,
)
from gint.kernel.target import SIMULATOR

float32, int32, int64 = np.float32, np.int32, np.int64

_ZERO = float32(0.0)
_ONE = float32(1.0)
_BF16_NAN = int32(0x7FC0)
_I32_LIMIT = float32(2147483648.0)  # 2**31, exactly representable
_I64_LIMIT = float32(9223372036854775808.0)  # 2**63


def device(fn):
    """Compile ``fn`` as a Numba device function, or leave it Python under the simulator."""
    return fn if SIMULATOR else cuda.jit(device=True)(fn)


# ---------------------------------------------------------------- element access


@device
def load_element(base, dtype, index):
    """Element ``index`` of the tensor at ``base`` with dtype code ``dtype``, as float32."""
    if dtype == DT_F32:
        return load_f32(base + index * 4)
    if dtype == DT_BF16:
        return bits_to_f32(int32(load_u16(base + index * 2) << 16))
    if dtype == DT_F16:
        return f16_bits_to_f32(load_u16(base + index * 2))
    if dtype == DT_I32:
        return float32(load_i32(base + index * 4))
    if dtype == DT_I64:
        return float32(load_i64(base + index * 8))
    return truth(load_u8(base + index) != 0)  # bool


@device
def f32_to_bf16_bits(value):
    """Round float32 to bfloat16 (nearest, ties to even), as the 16 stored bits."""
    if value != value:
        return _BF16_NAN
    bits = int64(f32_to_bits(value)) & 0xFFFFFFFF
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return int32((bits >> 16) & 0xFFFF)


@device
def saturate_i32(value):
    """float32 -> int32 truncating toward zero; nan -> 0, out of range saturates (as CUDA)."""
    if value != value:
        return int32(0)
    if value >= _I32_LIMIT:
        return int32(2147483647)
    if value < -_I32_LIMIT:
        return int32(-2147483648)
    return int32(value)


@device
def saturate_i64(value):
    """float32 -> int64 truncating toward zero; nan -> 0, out of range saturates."""
    if value != value:
        return int64(0)
    if value >= _I64_LIMIT:
        return int64(9223372036854775807)
    if value < -_I64_LIMIT:
        return int64(-9223372036854775807 - 1)
    return int64(value)


@device
def store_element(base, dtype, index, value):
    """Round float32 ``value`` to ``dtype`` and write it to element ``index``."""
    if dtype == DT_F32:
        store_f32(base + index * 4, value)
    elif dtype == DT_BF16:
        store_u16(base + index * 2, f32_to_bf16_bits(value))
    elif dtype == DT_F16:
        store_u16(base + index * 2, f32_to_f16_bits(value))
    elif dtype == DT_I32:
        store_i32(base + index * 4, saturate_i32(value))
    elif dtype == DT_I64:
        store_i64(base + index * 8, saturate_i64(value))
    else:  # bool
        store_u8(base + index, int32(value != _ZERO))


# ------------------------------------------------- helpers named by gint.isa exprs


@device
def truth(condition):
    """1.0 for true, 0.0 for false."""
    return _ONE if condition else _ZERO


@device
def select(condition, if_true, if_false):
    return if_true if condition != _ZERO else if_false


@device
def minimum(a, b):
    """torch.minimum: nan if either operand is nan."""
    return a if (a < b or a != a) else b


@device
def maximum(a, b):
    """torch.maximum: nan if either operand is nan."""
    return a if (a > b or a != a) else b


if SIMULATOR:

    def fma(a, b, c):
        # float64 holds a*b exactly for float32 operands, so this rounds once, like fma
        return float32(np.float64(a) * np.float64(b) + np.float64(c))

else:

    @device
    def fma(a, b, c):
        return cuda.fma(a, b, c)
