"""Tiles that hold several short rows (``KernelConfig.multi_row_tiles``, issue 29; off
in the shipped kernel until the GPU confirms it): every row length, layout, dtype and
row offset against eager PyTorch with the path switched on, and the host's tile count
against the kernel's geometry. On a GPU the tiled kernel is built from source once."""

import dataclasses

import pytest
import torch

from gint.host import executor
from gint.host.frontend import bytecode
from gint.host.layout import plan
from gint.kernel.config import DEFAULT
from gint.kernel.tiles import tile_col_shift, tile_rows

TILED = dataclasses.replace(DEFAULT, multi_row_tiles=True)


@pytest.fixture(autouse=True)
def _tiled_kernel(request, monkeypatch):
    """Run these tests' programs on the multi-row tile kernel."""
    monkeypatch.setattr(executor, "SIM_CONFIG", TILED)
    target = request.getfixturevalue("target") if "target" in request.fixturenames else None
    if target is not None and target.name == "sim":
        from gint.kernel import interpreter

        built, ran = interpreter.simulator_kernel, []

        def recording(config=DEFAULT):
            ran.append(config)
            return built(config)

        monkeypatch.setattr(interpreter, "simulator_kernel", recording)
        yield
        assert ran and set(ran) == {TILED}, "the tests ran another kernel than the tiled one"
    elif target is not None:
        from gint.host import launcher

        previous = launcher.launcher_for(0)
        tiled = _gpu_launcher()
        launcher.use_launcher(0, tiled)
        yield
        launcher.use_launcher(0, previous)
    else:
        yield


_built = {}


def _gpu_launcher():
    from gint.host.launcher import KernelLauncher

    if "tiled" not in _built:
        _built["tiled"] = KernelLauncher(0, TILED)
    return _built["tiled"]

# simulator tiles are 64 threads x 8 = 512 elements: rows of 3 .. 200 come several to a tile
ROWS = [1, 3, 4, 5, 64, 70, 200]


@bytecode
def affine2(a, b, out):
    out.store(a.load() * 1.5 + b.load())


@bytecode
def neighbours(x, out):
    out.store(x.load(1) - x.load(-1) * 2.0)


@bytecode
def shifted_store(x, out):
    out.store(x.load() + 1.0, offset=-1)


def _random(shape, dtype, device):
    if dtype.is_floating_point:
        return torch.randn(shape, device=device).to(dtype)
    return torch.randint(-1000, 1000, shape, device=device, dtype=dtype)


def _shift(x, offset):
    """x[..., i + offset] along the last dim, 0 outside the row."""
    out = torch.zeros_like(x)
    n = x.shape[-1]
    if offset >= 0:
        out[..., : n - offset] = x[..., offset:]
    else:
        out[..., -offset:] = x[..., : n + offset]
    return out


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_contiguous_output_strided_inputs(target, row, dtype):
    outer = 37 if target.name == "sim" else 4099  # not a multiple of any tile's rows
    dev = target.device
    a = _random((row, outer), dtype, dev).t()  # transposed: column-major rows
    b = _random((outer, 2 * row), dtype, dev)[:, ::2] if row > 1 else _random((outer, row), dtype, dev)
    out = torch.full((outer, row), 7.0, device=dev, dtype=dtype)
    affine2(a, b, out)
    torch.testing.assert_close(out, (a.float() * 1.5 + b.float()).to(dtype))


@pytest.mark.parametrize("row", [4, 64, 70])
def test_head_major_views(target, row):
    """The rotary layout: a (batch, seq, heads, dim) tensor read as (batch, heads, seq, dim)."""
    batch, seq, heads = (2, 9, 3) if target.name == "sim" else (8, 512, 16)
    dev = target.device
    q = torch.randn(batch, seq, heads, row, device=dev).transpose(1, 2)
    k = torch.randn(batch, heads, seq, row, device=dev)
    out = torch.empty(batch, seq, heads, row, device=dev).transpose(1, 2)
    affine2(q, k, out)
    torch.testing.assert_close(out, q * 1.5 + k)


@pytest.mark.parametrize("row", [3, 64, 70])
def test_sliced_columns_and_broadcast(target, row):
    outer = 21 if target.name == "sim" else 3001
    dev = target.device
    wide = torch.randn(outer, row + 5, device=dev)
    a = wide[:, 2 : 2 + row]  # a misaligned slice: element by element
    b = torch.randn(row, device=dev)  # broadcast along the outer dim
    out = torch.empty(outer, row, device=dev)
    affine2(a, b, out)
    torch.testing.assert_close(out, a * 1.5 + b)
    col = torch.randn(outer, 1, device=dev)  # broadcast along the row
    affine2(col, b, out)
    torch.testing.assert_close(out, col * 1.5 + b)


@pytest.mark.parametrize("row", [3, 5, 64, 70])
def test_integers_stay_exact(target, row):
    outer = 19 if target.name == "sim" else 2049
    dev = target.device
    a = _random((outer, row), torch.int32, dev)
    b = _random((row, outer), torch.int32, dev).t()
    out = torch.zeros(outer, row, device=dev, dtype=torch.int32)
    affine2(a, torch.zeros_like(b), out)
    torch.testing.assert_close(out, (a.double() * 1.5).trunc().int())
    affine2(torch.zeros_like(a), b, out)
    torch.testing.assert_close(out, b)


@pytest.mark.parametrize("row", [3, 4, 64, 70])
def test_row_offsets_stay_inside_each_row(target, row):
    outer = 23 if target.name == "sim" else 1031
    dev = target.device
    x = torch.randn(outer, row, device=dev)
    out = torch.empty(outer, row, device=dev)
    neighbours(x, out)
    torch.testing.assert_close(out, _shift(x, 1) - _shift(x, -1) * 2.0)
    out = torch.full((outer, row), 5.0, device=dev)
    shifted_store(x, out)
    expected = torch.full_like(out, 5.0)
    expected[:, : row - 1] = x[:, 1:] + 1.0
    torch.testing.assert_close(out, expected)


def test_geometry():
    assert [tile_col_shift(n) for n in (1, 3, 4, 5, 64, 65, 2048)] == [2, 2, 2, 3, 6, 7, 11]
    assert [tile_rows(n, 2048) for n in (1, 3, 64, 70, 200, 1024, 1025, 4096)] == [512, 512, 32, 16, 8, 2, 1, 1]


@pytest.mark.parametrize(
    "shape, strides, per_tile, tiles, busy",
    [
        ((8, 16, 512, 64), (524288, 64, 1024, 1), 32, 2048, 1.0),  # the head-major rotary view
        ((4096, 70), (1, 4096), 16, 256, 70 / 128),
        ((2048, 200), (1, 2048), 8, 256, 200 / 256),
        ((3, 5000), (1, 3), 1, 9, 5000 / 6144),
    ],
)
def test_host_plans_the_kernels_tiles(shape, strides, per_tile, tiles, busy):
    layout = plan([shape, shape], [strides, torch.empty(shape).stride()], [torch.float32] * 2)
    assert layout.tile_rows(2048, multi_row=True) == per_tile
    assert layout.tiles(2048, multi_row=True) == tiles
    assert layout.busy_fraction(2048, multi_row=True) == pytest.approx(busy)
    assert layout.tile_rows(2048) == 1  # the shipped kernel: one row per tile
    assert layout.busy_fraction(2048) <= busy


def test_the_switch_leaves_the_shipped_kernel_as_it_is():
    from gint.kernel import codegen, interpreter

    assert interpreter.prebuilt_path((9, 0), DEFAULT).name.startswith(f"gint_{codegen.source_digest(DEFAULT)}_")
    assert interpreter.prebuilt_path((9, 0), DEFAULT).exists()
    assert codegen.source_digest(TILED) != codegen.source_digest(DEFAULT)
    assert "opaque_i32" in codegen.kernel_source(TILED) and "opaque_i32" not in codegen.kernel_source(DEFAULT)
