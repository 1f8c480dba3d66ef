"""The simulator's block runner (``gint.kernel.sim_blocks``): threads meet at
``syncthreads`` in order, and a thread that fails surfaces its own error at once."""

import time

import numpy as np
import pytest
from numba import cuda

from gint.kernel import sim_blocks
from gint.kernel.target import SIMULATOR

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="the simulator's block runner")


def test_syncthreads_orders_shared_memory_between_threads():
    assert sim_blocks.install()

    @cuda.jit
    def reverse(out):
        shared = cuda.shared.array(64, np.int64)
        tid = cuda.threadIdx.x
        shared[tid] = tid * 3
        cuda.syncthreads()
        out[cuda.blockIdx.x * 64 + tid] = shared[63 - tid]
        cuda.syncthreads()
        shared[tid] = 0

    out = np.zeros(128, np.int64)
    reverse[2, 64](out)
    assert out.tolist() == [(63 - t) * 3 for t in range(64)] * 2


def test_a_failing_thread_reports_its_own_error_without_a_hang():
    assert sim_blocks.install()

    @cuda.jit
    def fails(out):
        tid = cuda.threadIdx.x
        if tid == 5:
            raise ValueError("thread five")
        cuda.syncthreads()
        out[tid] = 1

    started = time.monotonic()
    with pytest.raises(ValueError, match="thread five"):
        fails[1, 32](np.zeros(32, np.int64))
    assert time.monotonic() - started < 10
