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
