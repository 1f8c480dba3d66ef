"""A faster block runner for Numba's CUDA simulator: ``syncthreads`` as a real barrier.

Numba's simulator runs each CUDA thread as a Python thread, and its block manager
finds threads waiting at ``syncthreads`` by polling every thread in a loop on the main
thread. That loop competes for the GIL with the threads it watches: about a third of a
small launch's time goes to it (numba-cuda 0.30). Here a block's threads meet at a
``threading.Barrier`` and the main thread only joins them, which is what CUDA's
semantics ask for anyway (every thread of a block reaches each ``syncthreads``, as
every thread of gint's kernel does).

Installed by ``gint.kernel.interpreter.simulator_kernel``; where the simulator's
internals differ from what this expects, it leaves them alone.
"""

from __future__ import annotations

import threading

import numpy as np

BARRIER_TIMEOUT = 60.0  # seconds: threads of a block that never meet have diverged


def install() -> bool:
    """Replace the simulator's polling block manager; False where it cannot."""
    try:
        from numba.cuda.simulator import kernel as sim
    except ImportError:
        return False
    manager, thread = getattr(sim, "BlockManager", None), getattr(sim, "BlockThread", None)
    if manager is None or thread is None or not hasattr(thread, "syncthreads"):
        return False
    if getattr(manager, "_gint_barrier", False):
        return True

    def run(self, grid_point, *args):
        points = list(np.ndindex(*self._block_dim))
        self._barrier = threading.Barrier(len(points))

        def target():
            self._f(*args)

        threads = [thread(target, self, grid_point, point, self._debug) for point in points]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [t for t in threads if t.exception]
        if failed:
            # the thread that failed first, not those its absence left at a broken barrier
            first = next((t for t in failed if not isinstance(t.exception[0], _BrokenBlock)), failed[0])
            raise first.exception[0].with_traceback(first.exception[1])

    def syncthreads(self):
        try:
            self._manager._barrier.wait(BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            raise _BrokenBlock("another thread of the block failed or never reached syncthreads") from None

    original_run = thread.run

    def thread_run(self):
        original_run(self)
        barrier = getattr(self._manager, "_barrier", None)
        if self.exception and barrier is not None:
            barrier.abort()  # the other threads of the block stop waiting for this one

    manager.run = run
    thread.syncthreads = syncthreads
    thread.run = thread_run
    manager._gint_barrier = True
    return True


class _BrokenBlock(RuntimeError):
    """A thread left a barrier another thread of its block never reached."""
