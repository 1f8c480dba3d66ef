"""The interpreter with tiles that hold several short rows (``KernelConfig.multi_row_tiles``).

A default tile is ``blockDim * EPT`` consecutive elements of ONE row, so a row of 64
keeps one thread in 32 busy. Here a row shorter than half a tile is padded to
``cols`` columns (a power of two, ``gint.kernel.tiles``) and a tile holds
``tile_len // cols`` consecutive rows of the dimension outside the row: run ``g`` of a
thread sits in the tile's row ``e_g >> shift``, column ``e_g & (cols - 1)``. What
changes against ``gint.kernel.codegen.Generator`` (each a hook there):

- per launch, in shared memory (the dispatch loop needs every register it has): the
  tile geometry ``sh_geometry`` = rows per tile, row blocks of the outer dim, column
  shift, rows that make a tile whole (-1: never), tiles per row, tiles in the domain;
  per slot its row skip (outer stride less the tile's columns);
- per tile and warp: how many of the tile's rows are in the domain (``sh_rows_here``);
- a whole tile's vector access adds ``row * skip`` to each run's offset; a checked
  access starts at its run's row (``row_start + tile_row * outer_step``) and a run in a
  row past the domain's end touches nothing (its row end is 0);
- values derived per run go through ``opaque_i32`` so LLVM recomputes them inside the
  case instead of keeping one register per run for the whole launch.

Rows at least half a tile long, row programs and single-row domains take the same
path with one row per tile (column shift ``SINGLE_ROW_SHIFT``: every run in row 0).
"""

from __future__ import annotations

from gint.isa import MAX_SLOTS
from gint.kernel.codegen import MAX_WARPS, Generator
from gint.kernel.source import INDENT, indent
from gint.kernel.tiles import SINGLE_ROW_SHIFT
from gint.abi import MAX_DIMS


class TiledGenerator(Generator):
    """``Generator`` whose tiles cover several rows shorter than half a tile."""

    # -- LOAD / STORE ------------------------------------------------------------

    def general_prologue(self) -> list[str]:
        return super().general_prologue() + [
            f"outer_step = sh_stride[slot * {MAX_DIMS} + {MAX_DIMS - 2}]",
            "shift = sh_geometry[2]",
            "rows_here = sh_rows_here[warp_records]",
        ]

    def run_prologue(self, g: int) -> list[str]:
        return [f"tile_row = opaque_i32(e{g}) >> shift"]

    def row_position(self, g: int) -> str:
        return f"row_start + tile_row * outer_step, step, chunk_start + (e{g} - (tile_row << shift)) + offset"

    def row_end(self, g: int, limit: str) -> str:
        return f"{limit} if tile_row < rows_here else 0"

    def direct_prologue(self) -> list[str]:
        return ["shift = sh_geometry[2]", "skip = sh_row_skip[slot]"]

    def tile_offset(self, g: int) -> str:
        return f"e{g} + (opaque_i32(e{g}) >> shift) * skip"

    # -- launch set-up -------------------------------------------------------------

    def more_shared_arrays(self) -> list[str]:
        return [
            # per warp (at warp_records): how many of the tile's rows are in the domain
            f"sh_rows_here = cuda.shared.array({MAX_WARPS * MAX_SLOTS}, int32)",
            # rows per tile, row blocks, column shift, rows of a whole tile (-1: none),
            # tiles per row, tiles in the domain
            "sh_geometry = cuda.shared.array(6, int64)",
            # per slot: its outer stride less the tile's columns (a run's row skip)
            f"sh_row_skip = cuda.shared.array({MAX_SLOTS}, int64)",
        ]

    def tile_len(self) -> str:
        return f"tile_len = int32(width * {self.ept})"  # one register, not a 64-bit pair

    def vector_modes(self, strides: str) -> list[str]:
        return []  # with the geometry, once tile_len is known (tile_counts)

    def tile_counts(self, strides: str) -> list[str]:
        dims = MAX_DIMS
        outer_dims = " * ".join(f"table[{d}]" for d in range(dims - 2))
        geometry = [
            "sh_geometry[0] = per_tile",
            f"sh_geometry[1] = (table[{dims - 2}] + per_tile - 1) // per_tile",
            "sh_geometry[2] = col_shift",
            "sh_geometry[3] = per_tile if per_tile > 1 and row == (1 << col_shift) else -1",
            # tile counters are 32-bit (2^31 tiles of 2048+ elements is beyond any GPU's memory)
            "row_tiles = 1 if row_program else (row + tile_len - 1) // tile_len",
            "sh_geometry[4] = row_tiles",
            f"sh_geometry[5] = int32({outer_dims} * sh_geometry[1] * row_tiles)",
        ]
        per_slot = [
            f"sh_vector[tid] = vector_mode(sh_dtype[tid], sh_base[tid], {strides})",
            "per_tile = 1 if row_program or rows == 1 else tile_rows(row, tile_len)",
            f"col_shift = tile_col_shift(row) if per_tile > 1 else {SINGLE_ROW_SHIFT}",
            f"sh_row_skip[tid] = sh_stride[tid * {dims} + {dims - 2}] - (1 << col_shift) if per_tile > 1 else 0",
            "if tid == 0:",
            *indent(geometry),
        ]
        return [
            f"rows = {' * '.join(f'table[{d}]' for d in range(dims - 1))}",
            f"if tid < {MAX_SLOTS}:",
            *indent(per_slot),
            "if lane == 0:",
            INDENT + "sh_rows_here[warp_records] = 1",
            "cuda.syncthreads()",
            "grid_len = tile_step * tile_len",
        ]

    def run_start(self, g: int) -> str:
        return f"int32(e0 + {g * self.vec} * width)"

    # -- the tile loop -------------------------------------------------------------

    def tiles_per_row(self) -> list[str]:
        # an opaque index: a load LLVM may not hoist out of the tile loop into a register
        return ["tiles_per_row = int32(sh_geometry[opaque_i32(int32(4))])"]

    def outer_coordinates(self) -> list[str]:
        # the dimension outside the row comes in blocks of the tile's rows
        lines = ["o2 = rest % sh_geometry[1]", "rest = rest // sh_geometry[1]", "o2 = o2 * sh_geometry[0]"]
        for d in reversed(range(MAX_DIMS - 2)):
            lines += ["o0 = rest"] if d == 0 else [f"o{d} = rest % table[{d}]", f"rest = rest // table[{d}]"]
        return lines

    def more_row_records(self) -> list[str]:
        return ["if lane == 0:", INDENT + f"sh_rows_here[warp_records] = int32(min(sh_geometry[0], table[{MAX_DIMS - 2}] - o2))"]

    def whole_tile(self) -> str:
        # a chunk inside the row, or a tile whose every row is whole and in the domain
        return "chunk_start + tile_len <= row or sh_rows_here[warp_records] == sh_geometry[3]"

    def tiles_left(self) -> str:
        return "tile < sh_geometry[opaque_i32(int32(5))]"

    def more_imports(self) -> list[str]:
        return ["from gint.kernel.tilemem import opaque_i32, tile_col_shift, tile_rows"]
