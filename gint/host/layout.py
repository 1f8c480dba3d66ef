"""Tensor layout planning: shapes and strides -> the kernel's iteration domain and
tensor table.

The domain is the broadcast of every slot's shape. Each slot gets an element
stride per domain dimension (0 where it is broadcast). Dimensions of size 1 are
dropped and neighbours that every slot walks contiguously are merged, as
TensorIterator does, so a contiguous graph runs as one long row whatever its rank.
At most ``abi.MAX_DIMS`` dimensions may remain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gint import abi


class LayoutError(ValueError):
    """Tensors whose shapes or strides the kernel cannot iterate together."""


@dataclass(frozen=True)
class TensorLayout:
    """Everything the tensor table holds: domain sizes, per-slot dtype and strides."""

    domain: tuple[int, ...]  # abi.MAX_DIMS sizes, the row (innermost) last
    strides: tuple[tuple[int, ...], ...]  # per slot: abi.MAX_DIMS element strides
    dtypes: tuple[int, ...]  # per slot: abi dtype code

    @property
    def numel(self) -> int:
        return math.prod(self.domain)

    def words(self) -> list[int]:
        """The tensor table as int64 words (see ``gint.abi``)."""
        words = [0] * abi.TABLE_WORDS
        words[: abi.HEADER] = self.domain
        for slot, (dtype, strides) in enumerate(zip(self.dtypes, self.strides, strict=True)):
            words[abi.slot_word(slot, 0)] = dtype
            for dim, stride in enumerate(strides):
                words[abi.slot_word(slot, 1 + dim)] = stride
        return words

    @property
    def rows(self) -> int:
        return math.prod(self.domain[:-1])

    def tiles(self, tile_len: int) -> int:
        """How many tiles of ``tile_len`` row elements cover the domain."""
        return self.rows * -(-self.domain[-1] // tile_len)

    def blocks(self, block: int, tile_len: int, row_program: bool) -> int:
        """Blocks of ``block`` threads with work: one per tile, or, for a row program
        (a warp per row), one per ``block // 32`` rows."""
        return -(-self.rows // (block // 32)) if row_program else self.tiles(tile_len)


def broadcast_strides(shape: Sequence[int], strides: Sequence[int], domain: Sequence[int]) -> list[int]:
    """Element strides of a tensor viewed at the ``domain`` shape (0 where broadcast)."""
    lead = len(domain) - len(shape)
    result = [0] * lead
    for size, stride, target in zip(shape, strides, domain[lead:]):
        result.append(0 if size == 1 and target != 1 else stride)
    return result


def coalesce(domain: list[int], strides: list[list[int]], keep_row: bool) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours every slot walks contiguously.

    With ``keep_row`` the last dimension stays as it is (element offsets in the
    program are relative to it, so it must not grow into the previous one).
    """
    last = len(domain) - 1
    keep = [d for d in range(len(domain)) if domain[d] != 1 or (keep_row and d == last)]
    sizes = [domain[d] for d in keep]
    cols = [[s[d] for d in keep] for s in strides]
    d = len(sizes) - 2
    while d >= 0:
        protected = keep_row and d + 1 == len(sizes) - 1
        if not protected and all(c[d] == c[d + 1] * sizes[d + 1] for c in cols):
            sizes[d] *= sizes.pop(d + 1)
            for c in cols:
                c[d] = c.pop(d + 1)
        d -= 1
    return sizes, cols


def plan(
    shapes: Sequence[Sequence[int]],
    strides: Sequence[Sequence[int]],
    dtypes: Sequence[torch.dtype],
    *,
    stored: set[int] = frozenset(),
    keep_row: bool = False,
    reduce_dims: Sequence[int] | None = None,
) -> TensorLayout:
    """Lay out slots of the given shapes, strides (in elements) and dtypes.

    ``stored`` slots must span the whole domain without broadcasting. For a row program,
    ``reduce_dims`` (dims of the domain, the broadcast of all shapes) become the row:
    they are moved innermost and merged into one dimension (their memory must allow
    that), and stored slots may instead be per-row results (size 1 in all of them).
    """
    try:
        domain = list(torch.broadcast_shapes(*(tuple(s) for s in shapes)))
    except RuntimeError as error:
        raise LayoutError(f"shapes {[tuple(s) for s in shapes]} do not broadcast: {error}") from None
    reduced = sorted({d % len(domain) for d in reduce_dims}) if reduce_dims is not None and domain else []
    per_row = [1 if d in reduced else size for d, size in enumerate(domain)]
    for slot in sorted(stored):
        if tuple(shapes[slot]) != tuple(domain) and not (reduced and tuple(shapes[slot]) == tuple(per_row)):
            raise LayoutError(
                f"slot {slot} is written but has shape {tuple(shapes[slot])}, not the full shape {tuple(domain)}"
            )
    walked = [broadcast_strides(shape, stride, domain) for shape, stride in zip(shapes, strides)]
    for slot in sorted(stored):
        if any(st == 0 and size > 1 and d not in reduced for d, (st, size) in enumerate(zip(walked[slot], domain))):
            raise LayoutError(f"slot {slot} is written but overlaps itself (a zero stride)")
    if reduce_dims is not None:
        sizes, cols = _row_layout(domain, walked, reduced)
    else:
        sizes, cols = coalesce(domain or [1], [w or [0] for w in walked], keep_row)
    if not sizes:
        sizes, cols = [1], [[0] for _ in cols]
    if len(sizes) > abi.MAX_DIMS:
        raise LayoutError(
            f"shape {tuple(domain)} with these strides needs {len(sizes)} dimensions; the kernel iterates "
            f"at most {abi.MAX_DIMS} (make some inputs contiguous)"
        )
    pad = abi.MAX_DIMS - len(sizes)
    return TensorLayout(
        domain=tuple([1] * pad + sizes),
        strides=tuple(tuple([0] * pad + c) for c in cols),
        dtypes=tuple(abi.DTYPE_CODE[dt] for dt in dtypes),
    )


def _row_layout(domain: list[int], walked: list[list[int]], reduced: list[int]) -> tuple[list[int], list[list[int]]]:
    """A row program's domain: the kept dims (coalesced), then the reduced dims merged
    into the one row."""
    kept = [d for d in range(len(domain)) if d not in reduced]
    outer, outer_cols = coalesce([domain[d] for d in kept] or [1], [[w[d] for d in kept] or [0] for w in walked], False)
    row, row_cols = coalesce([domain[d] for d in reduced] or [1], [[w[d] for d in reduced] or [0] for w in walked], False)
    if len(row) > 1:
        raise LayoutError(
            f"the reduced dimensions {reduced} of shape {tuple(domain)} are not one contiguous run in every tensor"
        )
    if not row:  # every reduced dim has size 1: a row of one element
        row, row_cols = [1], [[0] for _ in walked]
    outer = outer or [1]
    outer_cols = [c or [0] for c in outer_cols]
    return outer + row, [o + r for o, r in zip(outer_cols, row_cols, strict=True)]

