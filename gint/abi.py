"""What the host and the kernel agree on: dtype codes, the tensor-table layout,
the iteration domain and the kernel's parameters.

The tensor table is an int64 device array. Its header holds the iteration
domain, ``MAX_DIMS`` sizes with the innermost (the "row") last; then one record
per slot: the dtype code and the slot's stride, in elements, along each domain
dimension (0 where the slot is broadcast). Base addresses are NOT in the table:
they change on every call, so they travel as kernel parameters, which costs no
extra API call and stays valid when a launch is captured into a CUDA graph. The
table depends only on shapes, strides and dtypes, so it is built and uploaded
once per shape and reused.
"""

from __future__ import annotations

import torch

from gint.isa import MAX_SLOTS

MAX_DIMS = 4  # domain dimensions after coalescing

# dtype code -> torch dtype. The kernel branches on the code; adding a dtype means a
# code here plus its load/store in gint.kernel.memory.
DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.float16,
    2: torch.bfloat16,
    3: torch.int32,
    4: torch.int64,
    5: torch.bool,
}
DTYPE_CODE: dict[torch.dtype, int] = {dt: code for code, dt in DTYPES.items()}
DT_F32, DT_F16, DT_BF16, DT_I32, DT_I64, DT_BOOL = range(6)

# Tensor-table layout (int64 words).
HEADER = MAX_DIMS  # domain sizes d0 .. d{MAX_DIMS-1}; the last is the row length
SLOT_RECORD = 1 + MAX_DIMS  # dtype code, then one stride per domain dimension
TABLE_WORDS = HEADER + MAX_SLOTS * SLOT_RECORD


def slot_word(slot: int, field: int) -> int:
    """Index of ``field`` (0 = dtype, 1 + d = stride along dim d) of ``slot``."""
    return HEADER + slot * SLOT_RECORD + field


# The encoded program (int32 words) starts with a header of program facts the kernel
# needs before it runs the first instruction; instructions follow in word pairs.
CODE_STREAM_MASK = 0  # bit s: slot s is only loaded, at offset 0: its next tiles are worth prefetching
CODE_ROW_PROGRAM = 1  # 1: a row program (each warp walks whole rows, chunk by chunk); 0: tiles
CODE_HEADER = 2  # instructions start here and stay 8-byte aligned

# Kernel parameters, in order: the encoded program (int32[::1]), the tensor table
# (int64[::1]), then one base address (int64) per slot.
KERNEL_NAME = "gint_interpret"
