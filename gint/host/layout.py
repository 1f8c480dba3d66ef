"""Tensor layout planning: shapes and strides -> the kernel's iteration domain and
tensor table.

The domain is the broadcast of every slot's shape. Each slot gets an element
stride per domain dimension (0 where it is broadcast). Dimensions of size 1 are
dropped and neighbours that every slot walks contiguously are merged, as
TensorIterator does, so a contiguous graph runs as one long row whatever its rank.
The kernel's table holds ``abi.MAX_DIMS`` dimensions; any beyond those (the smallest)
are iterated by the host, one launch per index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from gint import abi
from gint.kernel.tiles import tile_rows

# Below this share of busy tile elements with one row per tile, a layout runs on the
# multi-row tile kernel. On the H100 (2026-12-06, ``python -m gint.bench --layouts``
# with and without ``--multi-row-tiles``): rows of 64 (busy 0.03) 1,326 -> 49 us, rows of
# 784 (0.38) 154 -> 109 us; dense layouts (busy 1.0) 32 -> 37 us, so they keep the
# one-row kernel.
MULTI_ROW_BELOW = 0.5


class LayoutError(ValueError):
    """Tensors whose shapes or strides the kernel cannot iterate together."""


@dataclass(frozen=True)
class TensorLayout:
    """Everything the tensor table holds: domain sizes, per-slot dtype and strides."""

    domain: tuple[int, ...]  # abi.MAX_DIMS sizes, the row (innermost) last
    strides: tuple[tuple[int, ...], ...]  # per slot: abi.MAX_DIMS element strides
    dtypes: tuple[int, ...]  # per slot: abi dtype code
    # dimensions beyond the table's: the host launches once per index (sizes; per slot, strides)
    host_domain: tuple[int, ...] = ()
    host_strides: tuple[tuple[int, ...], ...] = ()
    # the (shape, strides, dtype) of each tensor it was planned for (``signature``)
    signature: tuple = field(default=(), compare=False)

    @property
    def numel(self) -> int:
        return math.prod(self.domain) * math.prod(self.host_domain)

    def host_offsets(self) -> list[tuple[int, ...]]:
        """Per launch, each slot's element offset: one launch per index of the host dims."""
        launches = []
        for index in itertools.product(*(range(n) for n in self.host_domain)):
            launches.append(tuple(sum(i * st for i, st in zip(index, strides)) for strides in self.host_strides))
        return launches

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

    def tile_rows(self, tile_len: int, multi_row: bool = False) -> int:
        """Rows of the domain one tile of ``tile_len`` elements holds: 1, or with
        multi-row tiles (``KernelConfig.multi_row_tiles``) ``gint.kernel.tiles``'s count."""
        return tile_rows(self.domain[-1], tile_len) if multi_row and self.rows > 1 else 1

    def tiles(self, tile_len: int, multi_row: bool = False) -> int:
        """How many tiles of ``tile_len`` elements cover the domain (the kernel's count)."""
        per_tile = self.tile_rows(tile_len, multi_row)
        if per_tile == 1:
            return self.rows * -(-self.domain[-1] // tile_len)
        return math.prod(self.domain[:-2]) * -(-self.domain[-2] // per_tile)

    def busy_fraction(self, tile_len: int, multi_row: bool = False) -> float:
        """The share of tile elements that are domain elements (1.0: no thread idles)."""
        return self.numel / (self.tiles(tile_len, multi_row) * tile_len * max(1, math.prod(self.host_domain)))

    def prefers_multi_row(self, tile_len: int) -> bool:
        """Whether the multi-row tile kernel should run this layout: its rows leave most
        of a one-row tile idle (below ``MULTI_ROW_BELOW`` busy) and several-row tiles fill
        more of it. (Not for row programs: they give each row a warp of its own.)"""
        if self.rows <= 1:
            return False
        single = self.busy_fraction(tile_len)
        return single < MULTI_ROW_BELOW and self.busy_fraction(tile_len, True) > single

    def blocks(self, block: int, tile_len: int, row_program: bool, multi_row: bool = False) -> int:
        """Blocks of ``block`` threads with work: one per tile, or, for a row program
        (a warp per row), one per ``block // 32`` rows."""
        return -(-self.rows // (block // 32)) if row_program else self.tiles(tile_len, multi_row)


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
    per_row: set[int] = frozenset(),
    loaded: set[int] = frozenset(),
) -> TensorLayout:
    """Lay out slots of the given shapes, strides (in elements) and dtypes.

    ``stored`` slots must span the whole domain without broadcasting. For a row program,
    ``reduce_dims`` (dims of the domain, the broadcast of all shapes) become the row:
    they are moved innermost and merged into one dimension (their memory must allow
    that), and stored slots may instead be per-row results (size 1 in all of them);
    ``per_row`` slots must be (the program stores them once per row, outside its loops),
    and a per-row slot must not also be ``loaded`` (element 0's lane writes what every
    lane of the row reads: a race).
    """
    try:
        domain = list(torch.broadcast_shapes(*(tuple(s) for s in shapes)))
    except RuntimeError as error:
        raise LayoutError(f"shapes {[tuple(s) for s in shapes]} do not broadcast: {error}") from None
    reduced = sorted({d % len(domain) for d in reduce_dims}) if reduce_dims is not None and domain else []
    per_row_shape = [1 if d in reduced else size for d, size in enumerate(domain)]
    for slot in sorted(stored):
        if tuple(shapes[slot]) != tuple(domain) and not (reduced and tuple(shapes[slot]) == tuple(per_row_shape)):
            raise LayoutError(
                f"slot {slot} is written but has shape {tuple(shapes[slot])}, not the full shape {tuple(domain)}"
            )
    walked = [broadcast_strides(shape, stride, domain) for shape, stride in zip(shapes, strides)]
    for slot in sorted(stored):
        if any(st == 0 and size > 1 and d not in reduced for d, (st, size) in enumerate(zip(walked[slot], domain))):
            raise LayoutError(f"slot {slot} is written but overlaps itself (a zero stride)")
    if reduce_dims is not None:
        sizes, cols = _row_layout(domain, walked, reduced)
        for slot in sorted(set(stored) & set(loaded)):
            if sizes[-1] > 1 and cols[slot][-1] == 0:
                raise LayoutError(
                    f"slot {slot} is read and written, but holds one value per row (shape {tuple(shapes[slot])}): "
                    "the lane that writes it and the lanes that read it would race"
                )
        for slot in sorted(per_row):
            if sizes[-1] > 1 and cols[slot][-1] != 0:
                raise LayoutError(
                    f"slot {slot} has shape {tuple(shapes[slot])}, but the program stores it once per row "
                    f"(outside its chunk loops), so it must hold one value per row (shape {tuple(per_row_shape)})"
                )
    else:
        sizes, cols = coalesce(domain or [1], [w or [0] for w in walked], keep_row)
    if not sizes:
        sizes, cols = [1], [[0] for _ in cols]
    sizes, cols, host_sizes, host_cols = _split_host_dims(sizes, cols)
    pad = abi.MAX_DIMS - len(sizes)
    return TensorLayout(
        domain=tuple([1] * pad + sizes),
        strides=tuple(tuple([0] * pad + c) for c in cols),
        dtypes=tuple(abi.DTYPE_CODE[dt] for dt in dtypes),
        host_domain=tuple(host_sizes),
        host_strides=tuple(tuple(c) for c in host_cols),
        signature=tuple((tuple(shape), tuple(stride), dtype) for shape, stride, dtype in zip(shapes, strides, dtypes)),
    )


def _split_host_dims(sizes: list[int], cols: list[list[int]]):
    """More dimensions than the kernel's table holds: the row and the largest others stay
    in the kernel; the host launches once per index of the rest (the smallest)."""
    if len(sizes) <= abi.MAX_DIMS:
        return sizes, cols, [], [[] for _ in cols]
    outer = range(len(sizes) - 1)
    kept = set(sorted(outer, key=lambda d: (-sizes[d], d))[: abi.MAX_DIMS - 1]) | {len(sizes) - 1}
    host = [d for d in outer if d not in kept]
    kept_order = [d for d in range(len(sizes)) if d in kept]
    return (
        [sizes[d] for d in kept_order],
        [[c[d] for d in kept_order] for c in cols],
        [sizes[d] for d in host],
        [[c[d] for d in host] for c in cols],
    )


def signature(tensors: Sequence[torch.Tensor]) -> tuple:
    """What a layout depends on: each tensor's shape, strides and dtype."""
    return tuple((tuple(t.shape), tuple(t.stride()), t.dtype) for t in tensors)


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

