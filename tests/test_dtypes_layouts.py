"""Loads and stores of every dtype, and inputs that are broadcast, strided,
transposed, 0-d or empty, through the tensor table, against eager PyTorch."""

import pytest
import torch

from gint import abi
from gint.host.frontend import bytecode
from gint.fuzz.reference import to_dtype as _to_dtype

DTYPES = list(abi.DTYPE_CODE)


def random_tensor(shape, dtype, device):
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, device=device).bool()
    if dtype.is_floating_point:
        return (torch.randn(shape, device=device) * 10).to(dtype)
    return torch.randint(-1000, 1000, shape, device=device, dtype=dtype)


@bytecode
def affine(x, out):
    out.store(x.load() * 1.5 + 0.25)


@pytest.mark.parametrize("src", DTYPES, ids=str)
@pytest.mark.parametrize("dst", DTYPES, ids=str)
def test_load_store_every_dtype(target, src, dst):
    x = random_tensor((target.numel,), src, target.device)
    out = random_tensor((target.numel,), dst, target.device)
    affine(x, out)
    expected = _to_dtype(x.float() * 1.5 + 0.25, dst)
    torch.testing.assert_close(out, expected)


@bytecode
def add3(a, b, c, out):
    out.store(a.load() + b.load() * c.load())


def _check_add3(a, b, c, out):
    add3(a, b, c, out)
    torch.testing.assert_close(out, (a + b * c).to(out.dtype))


def test_broadcasting(target):
    r, c = target.rows, target.cols
    a = torch.randn(r, c, device=target.device)
    b = torch.randn(c, device=target.device)
    col = torch.randn(r, 1, device=target.device)
    _check_add3(a, b, col, torch.empty(r, c, device=target.device))


def test_transposed_and_strided(target):
    r, c = target.rows, target.cols
    a = torch.randn(c, r, device=target.device).t()
    b = torch.randn(r, 2 * c, device=target.device)[:, ::2]
    cc = torch.randn(r, c, device=target.device)
    out = torch.empty(c, r, device=target.device).t()  # a transposed output
    _check_add3(a, b, cc, out)


def test_higher_rank_permuted(target):
    a = torch.randn(2, 3, 4, 5, device=target.device).permute(3, 1, 0, 2)
    b = torch.randn(5, 3, 2, 4, device=target.device)
    c = torch.randn(4, device=target.device)
    _check_add3(a, b, c, torch.empty(5, 3, 2, 4, device=target.device))


def test_zero_dim_and_empty(target):
    s = torch.tensor(3.0, device=target.device)
    _check_add3(s, s, s, torch.empty((), device=target.device))
    e = torch.empty(0, 5, device=target.device)
    add3(e, e, e, torch.empty(0, 5, device=target.device))  # nothing to do, must not fail


def test_in_place_update(target):
    x = torch.randn(target.numel, device=target.device)
    y = torch.randn(target.numel, device=target.device)
    before = x.clone()

    @bytecode
    def scale_in_place(x, y):
        x.store(x.load() * y.load())

    scale_in_place(x, y)
    torch.testing.assert_close(x, before * y)


def test_row_offsets(target):
    """A 3-point stencil along rows: offsets never cross into the next row."""

    @bytecode
    def stencil(x, out):
        out.store(x.load(-1) + 2.0 * x.load() + x.load(1))

    x = torch.randn(target.rows, target.cols, device=target.device)
    out = torch.empty_like(x)
    stencil(x, out)
    padded = torch.nn.functional.pad(x, (1, 1))
    torch.testing.assert_close(out, padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:])
