"""Device helpers of the multi-row tile path (``KernelConfig.multi_row_tiles``), apart
from ``gint.kernel.device`` and ``gint.kernel.memory`` so that the default kernel's
source digest, and with it the shipped PTX, does not change while the path is off.

- ``tile_rows`` / ``tile_col_shift``: ``gint.kernel.tiles`` compiled for the device.
- ``opaque_i32(v)``: ``v``, through a PTX ``mov`` the optimizer may neither see through
  nor move, so that what a case derives from a launch-long value is recomputed there
  instead of being hoisted out of the dispatch loop into a register of its own (it cut
  ptxas's spills of the first multi-row build from 104 B stores / 300 B loads to 4 / 8).
"""

from __future__ import annotations

from gint.kernel import tiles
from gint.kernel.target import SIMULATOR

if SIMULATOR:
    tile_rows = tiles.tile_rows
    tile_col_shift = tiles.tile_col_shift

    def opaque_i32(value):
        return value

else:
    from llvmlite import ir
    from numba import cuda, types
    from numba.cuda.extending import intrinsic

    tile_rows = cuda.jit(device=True)(tiles.tile_rows)
    tile_col_shift = cuda.jit(device=True)(tiles.tile_col_shift)

    @intrinsic
    def opaque_i32(typingctx, value):
        if value != types.int32:
            return None

        def codegen(context, builder, sig, args):
            asm_type = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
            return builder.call(ir.InlineAsm(asm_type, "mov.b32 $0, $1;", "=r,r", side_effect=True), args)

        return types.int32(types.int32), codegen
