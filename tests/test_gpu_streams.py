"""GPU-only behaviour of the backend: CUDA streams, and CPU tensors on a GPU machine."""

import pytest
import torch

import gint
from gint.conductor import register_backend
from gint.kernel.target import SIMULATOR

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(SIMULATOR or not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
register_backend()


def block(a, b):
    return torch.relu(a * b - 0.5) / (b.abs() + 1)


def _slow_producer(n, stream=None):
    """A tensor that eager work on the current stream finishes late (a long matmul chain)."""
    m = torch.randn(2048, 2048, device="cuda")
    for _ in range(10):
        m = m @ m / 2048**0.5
    return torch.randn(n, device="cuda") + m[0, 0] * 0


def test_ordered_against_eager_work_before_and_after():
    n = 1 << 22
    fn = torch.compile(block, backend="gint")
    b = torch.randn(n, device="cuda")
    fn(b, b)  # compile outside the timed region
    a = _slow_producer(n)  # queued before: gint must wait for it on the stream
    out = fn(a, b)
    after = out * 3 + 1  # queued after: must see gint's result
    torch.testing.assert_close(after, block(a, b) * 3 + 1)


def test_side_stream():
    n = 1 << 22
    fn = torch.compile(block, backend="gint")
    s = torch.cuda.Stream()
    b = torch.randn(n, device="cuda")
    with torch.cuda.stream(s):
        a = _slow_producer(n)
        out = fn(a, b)
        after = out - 1
    torch.cuda.current_stream().wait_stream(s)
    torch.testing.assert_close(after, block(a, b) - 1)


def test_launch_does_not_synchronize():
    n = 1 << 22
    fn = torch.compile(block, backend="gint")
    b = torch.randn(n, device="cuda")
    fn(b, b)
    torch.cuda.synchronize()
    a = _slow_producer(n)
    fn(a, b)
    assert not torch.cuda.current_stream().query(), "the host waited for the GPU"
    torch.cuda.synchronize()


def test_cpu_tensors_run_eagerly_on_a_gpu_machine():
    x, y = torch.randn(1000), torch.randn(1000)
    torch.testing.assert_close(torch.compile(block, backend="gint")(x, y), block(x, y))
    report = gint.explain(block, x, y)
    assert report.subgraphs == [] and report.coverage == 0
    assert all("runs on cpu" in fb.reason for fb in report.fallback)


def _busy(stream, milliseconds=200):
    """Queue ``milliseconds`` of GPU sleep on ``stream`` (about; 1.5 GHz or faster clocks)."""
    with torch.cuda.stream(stream):
        torch.cuda._sleep(int(milliseconds * 1.5e6))


@pytest.mark.parametrize("new", ["layout", "program"])
def test_a_table_uploaded_behind_a_busy_stream_is_complete_for_another_stream(new):
    """Issue 31: bytecode and tensor tables are cached for every stream and thread, so
    their copy must not wait in the uploading stream's queue. On main 4e310d2 the copy
    went on the caller's stream: a launch on a second stream read the table before it
    landed."""
    k = 1.25 if new == "layout" else 1.5 + torch.rand(()).item()  # a new constant: a new program

    def fn(a, b):
        return torch.relu(a * b - k) / (b.abs() + 1)

    compiled = torch.compile(fn, backend="gint", dynamic=True)
    busy, other = torch.cuda.Stream(), torch.cuda.Stream()
    n = (1 << 20) + 7
    a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    if new == "layout":
        compiled(a[:1000], b[:1000])  # compiled and its bytecode uploaded; n's table is new
    torch.cuda.synchronize()
    _busy(busy, 200 if new == "layout" else 3000)  # a new program: its compile happens in the busy time
    with torch.cuda.stream(busy):
        first = compiled(a, b)  # uploads what is new here
    with torch.cuda.stream(other):
        second = compiled(a, b)  # the same program and layout, launched at once on another stream
    torch.cuda.synchronize()
    torch.testing.assert_close(second, fn(a, b))
    torch.testing.assert_close(first, fn(a, b))


def test_a_new_layout_does_not_wait_for_the_callers_stream():
    compiled = torch.compile(block, backend="gint", dynamic=True)
    compiled(torch.randn(1000, device="cuda"), torch.randn(1000, device="cuda"))
    a, b = torch.randn(5003, device="cuda"), torch.randn(5003, device="cuda")
    torch.cuda.synchronize()
    _busy(torch.cuda.current_stream())
    out = compiled(a, b)  # a new layout: its table is uploaded, the GPU is still asleep
    assert not torch.cuda.current_stream().query(), "the host waited for the caller's stream"
    torch.testing.assert_close(out, block(a, b))
