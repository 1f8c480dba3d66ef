"""Which kernel runs a layout (issue 29): the multi-row tile kernel where rows leave a
one-row tile mostly idle (``TensorLayout.prefers_multi_row``), the default kernel
elsewhere; results against eager PyTorch either way."""

import pytest
import torch

import gint
from gint.conductor import register_backend
from gint.host import executor, layout
from gint.host.layout import plan

register_backend()


def rotary(q, cos, sin):
    half = q.shape[-1] // 2
    rotated = torch.cat([-q[..., half:], q[..., :half]], dim=-1)
    return q * cos + rotated * sin


def _planned(shape, strides):
    return plan([shape, shape], [strides, torch.empty(shape).stride()], [torch.float32] * 2)


@pytest.mark.parametrize(
    "shape, strides, prefers",
    [
        ((8, 16, 512, 64), (524288, 64, 1024, 1), True),  # head-major rows of 64
        ((32, 256, 784), (200704, 784, 1), False),  # rows of 784 coalesce into one run
        ((8, 16, 512, 64), (524288, 32768, 64, 1), False),  # dense: one long run
        ((4096, 3000), (6000, 1), False),  # rows of 3,000: a one-row tile is mostly busy
        ((4096, 600), (1200, 1), True),  # rows of 600 in every other 600
        ((1, 64), (64, 1), False),  # one row
    ],
)
def test_the_layouts_that_prefer_multi_row_tiles(shape, strides, prefers):
    planned = _planned(shape, strides)
    assert planned.prefers_multi_row(2048) == prefers
    if prefers:
        assert planned.busy_fraction(2048) < layout.MULTI_ROW_BELOW
        assert planned.busy_fraction(2048, multi_row=True) > planned.busy_fraction(2048)


@pytest.mark.parametrize("enabled", [True, False])
def test_short_strided_rows_run_on_the_tile_kernel(target, monkeypatch, enabled):
    monkeypatch.setattr(executor, "MULTI_ROW_TILES", enabled)
    base = torch.randn(2, 6, 3, 16, device=target.device)
    q = base.transpose(1, 2)  # (2, 3, 6, 16): rows of 16 a head apart
    cos, sin = torch.randn(6, 16, device=target.device), torch.randn(6, 16, device=target.device)
    torch._dynamo.reset()
    fast = torch.compile(rotary, backend="gint")
    before = gint.counters()
    got = fast(q, cos, sin)
    after = gint.counters()
    torch.testing.assert_close(got, rotary(q, cos, sin))
    tiled = after["launches_multi_row"] - before["launches_multi_row"]
    assert after["launches"] > before["launches"]
    assert (tiled > 0) == enabled


def test_dense_rows_stay_on_the_default_kernel(target):
    x, y = torch.randn(4, 3, 300, device=target.device), torch.randn(300, device=target.device)
    torch._dynamo.reset()
    before = gint.counters()["launches_multi_row"]
    torch.testing.assert_close(torch.compile(lambda a, b: a * b + 1, backend="gint")(x, y), x * y + 1)
    assert gint.counters()["launches_multi_row"] == before
