"""How tiles cover rows shorter than a tile: one source for the kernel and the host.

A tile is ``blockDim * EPT`` elements. A row at least half a tile long is walked in
tiles of its own (a tile is one row's chunk). A shorter row is padded to ``cols``
columns, the power of two at or above it (at least a vector run, 4), and a tile holds
``tile_len // cols`` consecutive rows of the dimension outside the row: element ``e``
of the tile is column ``e % cols`` of the tile's row ``e // cols``. A thread's vector
runs start at multiples of 4, so each run stays inside one row, and a warp's accesses
stay contiguous within each row. Columns at or past the row's end are idle: at most
half the tile, instead of all but ``row`` of it.

Plain Python on integers, so that ``gint.kernel.device`` compiles it for the GPU and
``gint.host.layout`` calls it as it is.
"""

from __future__ import annotations

SINGLE_ROW_SHIFT = 16  # the column shift of a one-row tile: every element is in row 0


def tile_col_shift(row):
    """log2 of the columns a row of ``row`` elements takes in a tile of several rows."""
    shift = 2
    while (1 << shift) < row:
        shift += 1
    return shift


def tile_rows(row, tile_len):
    """How many rows of ``row`` elements one tile of ``tile_len`` elements holds."""
    cols = 4  # as tile_col_shift: the kernel compiles each function alone
    while cols < row:
        cols *= 2
    if cols * 2 > tile_len:
        return 1
    return tile_len // cols
