"""Device functions the generated interpreter calls: dtype-dispatched element access
and the scalar helpers that instruction expressions in ``gint.isa`` name.

Written once as plain Python over numpy scalar types, so the same source compiles
with Numba for the GPU and runs as-is under the simulator. Arithmetic stays float32
throughout: numpy scalars keep float32 in the simulator as Numba does on the GPU.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from gint.abi import DT_BF16, DT_BOOL, DT_F16, DT_F32, DT_I32, DT_I64
from gint.kernel.memory import (
    bits_to_f32,
    f16_bits_to_f32,
    f32_to_bf16_bits,
    f32_to_f16_bits,
    load_f32,
    load_f32x4,
    load_i32,
    load_i32x2,
    load_i32x4,
    load_i64,
    load_u8,
    load_u8x4,
    load_u16,
    load_u16x4,
    max_nan,
    min_nan,
    prefetch_l2,
    store_f32,
    store_f32x4,
    store_i32,
    store_i32x4,
    store_i64,
    store_u8,
    store_u8x4,
    store_u16,
    store_u16x4,
)
from gint.kernel.mathfn import *  # noqa: F403  (the math that gint.isa expressions name)
from gint.kernel.mathfn import copysign, floor, fmod
from gint.kernel.target import SIMULATOR

float32, int32, int64 = np.float32, np.int32, np.int64

_ZERO = float32(0.0)
_ONE = float32(1.0)
_HALF = float32(0.5)
_WORD_ZERO = int32(0)
_HIGH_HALF = int32(-65536)  # 0xFFFF0000
_I32_LIMIT = float32(2147483648.0)  # 2**31, exactly representable
_I64_LIMIT = float32(9223372036854775808.0)  # 2**63


def device(fn):
    """Compile ``fn`` as a Numba device function, or leave it Python under the simulator."""
    return fn if SIMULATOR else cuda.jit(device=True)(fn)


# ---------------------------------------------------------------- element access


@device
def bf16_bits_to_f32(bits):
    return bits_to_f32(int32(bits << 16))


@device
def load_element(base, dtype, index):
    """Element ``index`` of the tensor at ``base`` with dtype code ``dtype``, as float32."""
    if dtype == DT_F32:
        return load_f32(base + index * 4)
    if dtype == DT_BF16:
        return bf16_bits_to_f32(load_u16(base + index * 2))
    if dtype == DT_F16:
        return f16_bits_to_f32(load_u16(base + index * 2))
    if dtype == DT_I32:
        return float32(load_i32(base + index * 4))
    if dtype == DT_I64:
        return float32(load_i64(base + index * 8))
    return truth(load_u8(base + index) != 0)  # bool


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


@device
def element_size(dtype):
    if dtype == DT_F32 or dtype == DT_I32:
        return 4
    if dtype == DT_F16 or dtype == DT_BF16:
        return 2
    if dtype == DT_I64:
        return 8
    return 1


@device
def prefetch_row_l2(base, dtype, row_start, first, count, row):
    """Bulk-prefetch elements [first, first + count) of a contiguous row into L2.

    Only whole 16-byte units inside the row: a prefetch never reaches past the tensor.
    """
    if first < row:
        size = element_size(dtype)
        start = base + (row_start + first) * size
        nbytes = (min(count, row - first) * size) & ~15
        if start & 15 == 0 and nbytes > 0:
            prefetch_l2(start, int32(nbytes))


# ------------------------------------------------------- whole-tile vector access


@device
def vector_bytes(dtype):
    """Bytes of one 4-element vector access of ``dtype`` (0: no vector access)."""
    if dtype == DT_I64:
        return 0
    return 4 * element_size(dtype)


_ELEMENT_SHIFTS = 0x032112  # nibble d: log2 of the element size of dtype code d (f32 f16 bf16 i32 i64 bool)


@device
def element_shift(dtype):
    """log2 of the element size of ``dtype``, without branches."""
    return (_ELEMENT_SHIFTS >> (dtype * 4)) & 15


@device
def vector_mode(dtype, base, outer0, outer1, outer2, step):
    """How a slot's whole tiles are reached: ``dtype`` when the slot is walked
    contiguously along the row (``step`` 1) and every row starts vector-aligned
    (base and outer strides are multiples of the vector width), so each thread's run
    is one aligned vector access; else -1 (element by element, with checks).

    Tiles are ``blockDim * EPT`` elements (blockDim a multiple of 32) and runs start
    at multiples of 4 elements, so alignment at a row start holds for every run."""
    width = vector_bytes(dtype)
    if width == 0 or step != 1:
        return -1
    size = element_size(dtype)
    if (base | outer0 * size | outer1 * size | outer2 * size) & (width - 1) != 0:
        return -1
    return dtype


@device
def load_tile_words(start, mode, e):
    """Elements e .. e+3 of the tile at address ``start`` as raw 32-bit words, in one
    vector access of the width of ``mode`` (a dtype code from ``vector_mode``, never
    -1): four words of a 4-byte dtype, two of a 16-bit one (two elements a word, the
    rest 0), one of bool (four bytes). Widening waits for the access
    (``widen_tile_group``), so a LOAD issues every run's access before it widens any:
    all of a tile's loads are in flight at once."""
    shift = element_shift(mode)
    if shift == 2:
        return load_i32x4(start + e * 4)
    if shift == 1:
        a, b = load_i32x2(start + e * 2)
        return a, b, _WORD_ZERO, _WORD_ZERO
    return load_i32(start + e), _WORD_ZERO, _WORD_ZERO, _WORD_ZERO  # bool


@device
def widen_tile_group(mode, words):
    """``load_tile_words``' words as the four elements' float32 values (dtype ``mode``)."""
    a, b, c, d = words
    if mode == DT_F32:
        return bits_to_f32(a), bits_to_f32(b), bits_to_f32(c), bits_to_f32(d)
    if mode == DT_BF16:  # a bfloat16 is the high half of its float32
        return bf16_bits_to_f32(a), bits_to_f32(int32(a & _HIGH_HALF)), bf16_bits_to_f32(b), bits_to_f32(int32(b & _HIGH_HALF))
    if mode == DT_F16:
        return f16_bits_to_f32(a), f16_bits_to_f32(int32(a >> 16)), f16_bits_to_f32(b), f16_bits_to_f32(int32(b >> 16))
    if mode == DT_I32:
        return float32(a), float32(b), float32(c), float32(d)
    return truth((a & 255) != 0), truth(((a >> 8) & 255) != 0), truth(((a >> 16) & 255) != 0), truth(((a >> 24) & 255) != 0)


@device
def store_tile_group(start, mode, e, a, b, c, d):
    """Write elements e .. e+3 of the tile at ``start`` in vector ``mode`` (see ``vector_mode``)."""
    if mode == DT_F32:
        store_f32x4(start + e * 4, a, b, c, d)
    elif mode == DT_BF16:
        store_u16x4(start + e * 2, f32_to_bf16_bits(a), f32_to_bf16_bits(b), f32_to_bf16_bits(c), f32_to_bf16_bits(d))
    elif mode == DT_F16:
        store_u16x4(start + e * 2, f32_to_f16_bits(a), f32_to_f16_bits(b), f32_to_f16_bits(c), f32_to_f16_bits(d))
    elif mode == DT_I32:
        store_i32x4(start + e * 4, saturate_i32(a), saturate_i32(b), saturate_i32(c), saturate_i32(d))
    else:  # bool
        store_u8x4(start + e, int32(a != _ZERO), int32(b != _ZERO), int32(c != _ZERO), int32(d != _ZERO))


# ------------------------------------------------------ element-wise access (general)


@device
def load_at(base, dtype, row_start, step, i, row):
    """Element i of the current row as float32; 0 outside the row."""
    if i < 0 or i >= row:
        return _ZERO
    return load_element(base, dtype, row_start + i * step)


@device
def store_at(base, dtype, row_start, step, i, row, value):
    """Write element i of the current row; nothing outside the row. A slot that does not
    move along the row (stride 0: a row program's per-row result) is written by element 0 only."""
    if i >= 0 and i < row and (step != 0 or i == 0):
        store_element(base, dtype, row_start + i * step, value)


@device
def load_group(base, dtype, row_start, step, j, row):
    """Elements j .. j+3 of the current row as four float32 (0 outside the row).

    One 16-, 8- or 4-byte vector load when the four are in the row, contiguous and
    aligned (the common case); element by element otherwise.
    """
    if step == 1 and j >= 0 and j + 3 < row:
        index = row_start + j
        if dtype == DT_F32:
            addr = base + index * 4
            if addr & 15 == 0:
                return load_f32x4(addr)
        elif dtype == DT_BF16:
            addr = base + index * 2
            if addr & 7 == 0:
                a, b, c, d = load_u16x4(addr)
                return bf16_bits_to_f32(a), bf16_bits_to_f32(b), bf16_bits_to_f32(c), bf16_bits_to_f32(d)
        elif dtype == DT_F16:
            addr = base + index * 2
            if addr & 7 == 0:
                a, b, c, d = load_u16x4(addr)
                return f16_bits_to_f32(a), f16_bits_to_f32(b), f16_bits_to_f32(c), f16_bits_to_f32(d)
        elif dtype == DT_I32:
            addr = base + index * 4
            if addr & 15 == 0:
                a, b, c, d = load_i32x4(addr)
                return float32(a), float32(b), float32(c), float32(d)
        elif dtype == DT_BOOL:
            addr = base + index
            if addr & 3 == 0:
                a, b, c, d = load_u8x4(addr)
                return truth(a != 0), truth(b != 0), truth(c != 0), truth(d != 0)
    return (
        load_at(base, dtype, row_start, step, j, row),
        load_at(base, dtype, row_start, step, j + 1, row),
        load_at(base, dtype, row_start, step, j + 2, row),
        load_at(base, dtype, row_start, step, j + 3, row),
    )


@device
def store_group(base, dtype, row_start, step, j, row, a, b, c, d):
    """Write elements j .. j+3 of the current row (vector store when possible)."""
    if step == 1 and j >= 0 and j + 3 < row:
        index = row_start + j
        if dtype == DT_F32:
            addr = base + index * 4
            if addr & 15 == 0:
                store_f32x4(addr, a, b, c, d)
                return
        elif dtype == DT_BF16:
            addr = base + index * 2
            if addr & 7 == 0:
                store_u16x4(addr, f32_to_bf16_bits(a), f32_to_bf16_bits(b), f32_to_bf16_bits(c), f32_to_bf16_bits(d))
                return
        elif dtype == DT_F16:
            addr = base + index * 2
            if addr & 7 == 0:
                store_u16x4(addr, f32_to_f16_bits(a), f32_to_f16_bits(b), f32_to_f16_bits(c), f32_to_f16_bits(d))
                return
        elif dtype == DT_I32:
            addr = base + index * 4
            if addr & 15 == 0:
                store_i32x4(addr, saturate_i32(a), saturate_i32(b), saturate_i32(c), saturate_i32(d))
                return
        elif dtype == DT_BOOL:
            addr = base + index
            if addr & 3 == 0:
                store_u8x4(addr, int32(a != _ZERO), int32(b != _ZERO), int32(c != _ZERO), int32(d != _ZERO))
                return
    store_at(base, dtype, row_start, step, j, row, a)
    store_at(base, dtype, row_start, step, j + 1, row, b)
    store_at(base, dtype, row_start, step, j + 2, row, c)
    store_at(base, dtype, row_start, step, j + 3, row, d)


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
    """torch.minimum on CUDA: nan if either operand is nan; -0 is below +0."""
    return min_nan(a, b)


@device
def maximum(a, b):
    """torch.maximum on CUDA: nan if either operand is nan; +0 is above -0."""
    return max_nan(a, b)


@device
def floor_divide(a, b):
    """torch.div(a, b, rounding_mode='floor') for floats: exact where floor(a / b) is not."""
    if b == _ZERO:
        return a / b
    mod = fmod(a, b)
    div = (a - mod) / b
    if mod != _ZERO and (b < _ZERO) != (mod < _ZERO):
        div = div - _ONE
    if div != _ZERO:
        result = floor(div)
        if div - result > _HALF:
            result = result + _ONE
        return result
    return copysign(_ZERO, a / b)


if SIMULATOR:
    import math
    import struct

    def fma(a, b, c):
        """a * b + c rounded once to float32, as fma.rn.f32. float64 holds a*b exactly, but
        the sum may need more bits: it is rounded to odd (its error known exactly from
        TwoSum), and a float64 rounded to odd rounds to float32 as the exact sum would."""
        product, addend = float(a) * float(b), float(c)
        total = product + addend
        virtual = total - product
        error = (product - (total - virtual)) + (addend - virtual)
        if error != 0 and math.isfinite(total):
            toward_zero = total if (error > 0) == (total > 0) else math.nextafter(total, 0.0)
            (bits,) = struct.unpack("<q", struct.pack("<d", toward_zero))
            (total,) = struct.unpack("<d", struct.pack("<q", bits | 1))
        return float32(total)

else:

    @device
    def fma(a, b, c):
        return cuda.fma(a, b, c)
