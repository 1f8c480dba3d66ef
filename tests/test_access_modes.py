"""Access modes: whole tiles of contiguous, vector-aligned slots move with one vector
access per run; everything else goes element by element with checks.

Each block walks many tiles here, and inputs mix dtypes, alignments and layouts, so
vector and element-wise accesses of several slots meet in one program, on whole
tiles and on the ragged tiles at row ends.
"""

import pytest
import torch

from gint.host.executor import SIM_BLOCK, SIM_MAX_GRID
from gint.host.frontend import bytecode, maximum
from gint.host.program import streamed_slots
from gint.kernel.config import DEFAULT


def many_tiles(target) -> int:
    """A size that makes every block walk several tiles, plus a ragged last tile."""
    if target.name == "gpu":
        return target.numel
    return SIM_BLOCK * DEFAULT.ept * SIM_MAX_GRID * 5 + 7


@bytecode
def mix(a, b, c, d, e, out):
    t = a.load() * 0.5 + b.load()
    out.store(maximum(t, c.load()) - d.load() * e.load())


def _mix_reference(a, b, c, d, e):
    t = a.float() * 0.5 + b.float()
    return torch.maximum(t, c.float()) - d.float() * e.float()


def test_vector_slots_of_every_vector_dtype(target):
    n = many_tiles(target)
    dev = target.device
    a = torch.randn(n, device=dev)
    b = torch.randn(n, device=dev).bfloat16()
    c = torch.randn(n, device=dev).half()
    d = torch.randint(-50, 50, (n,), device=dev, dtype=torch.int32)
    e = torch.rand(n, device=dev) > 0.5
    out = torch.full((n,), float("nan"), device=dev)
    assert streamed_slots(mix.program) == [0, 1, 2, 3, 4]
    mix(a, b, c, d, e, out)
    torch.testing.assert_close(out, _mix_reference(a, b, c, d, e))


def test_misaligned_and_strided_inputs_next_to_vector_ones(target):
    n = many_tiles(target)
    dev = target.device
    a = torch.randn(n + 1, device=dev)[1:]  # 4 bytes past a 16-byte boundary: no vector access
    b = torch.randn(2 * n, device=dev)[::2].bfloat16()  # strided
    c = torch.randn(n, device=dev)
    d = torch.randn(n + 3, device=dev).half()[3:]  # 6 bytes off: element by element
    e = torch.randn(1, device=dev).expand(n)  # broadcast
    out = torch.empty(n, device=dev)
    mix(a, b, c, d, e, out)
    torch.testing.assert_close(out, _mix_reference(a, b, c, d, e))


@pytest.mark.parametrize("cols_per_tile", [0.4, 1.7])
def test_rows_longer_and_shorter_than_a_tile(target, cols_per_tile):
    tile = SIM_BLOCK * DEFAULT.ept if target.name == "sim" else 256 * DEFAULT.ept
    cols = int(tile * cols_per_tile) // 4 * 4  # rows start 16-byte aligned: whole tiles are vector tiles
    rows = max(many_tiles(target) // cols, 3)
    dev = target.device
    a, c = (torch.randn(rows, cols, device=dev) for _ in range(2))
    b = torch.randn(cols, device=dev).bfloat16()  # broadcast along rows
    d = torch.randn(rows, 1, device=dev).half()  # broadcast along columns
    e = torch.randn(cols, rows, device=dev).t()  # transposed
    out = torch.empty(rows, cols, device=dev)
    mix(a, b, c, d, e, out)
    torch.testing.assert_close(out, _mix_reference(a, b, c, d, e))


@bytecode
def smooth(x, out):
    out.store(x.load(offset=-1) + x.load() * 2.0 + x.load(offset=1))


@bytecode
def scale_in_place(x, y, out):
    out.store(x.load() * y.load())


def test_offsets_and_in_place_writes(target):
    """A slot read at an offset goes element by element; an output may be an input's view."""
    n = many_tiles(target)
    x = torch.randn(n, device=target.device)
    assert streamed_slots(smooth.program) == []
    out = torch.empty_like(x)
    smooth(x, out)
    padded = torch.nn.functional.pad(x, (1, 1))
    torch.testing.assert_close(out, padded[:-2] + x * 2.0 + padded[2:])

    y = torch.randn(n, device=target.device)
    expected = x * y
    scale_in_place(x, y, x)  # x is read and overwritten through the same view
    torch.testing.assert_close(x, expected)
    assert streamed_slots(scale_in_place.program) == [0, 1]  # only loaded slots are prefetched
