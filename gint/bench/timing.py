"""Timing helpers: CUDA events around device work, medians after warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

HOST_HEADROOM_US = 200  # per call: longer than any host path timed here takes to issue one call
MAX_CLOCK_HZ = 2.0e9  # at or above the SM clock of the GPUs we time on, so the sleep is long enough


def device_time_us(fn: Callable[[], object], *, warmup: int = 5, reps: int = 25, batch: int = 4) -> float:
    """Median device time per call of ``fn()`` in microseconds.

    Each rep brackets ``batch`` back-to-back calls with CUDA events, queued behind a
    device-side sleep long enough for the host to issue them all: the figure is the
    GPU's time for the work, not the host's time to launch it (``wall_time_us`` and
    ``host_time_us`` measure that).
    """
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    cycles = int(batch * HOST_HEADROOM_US * 1e-6 * MAX_CLOCK_HZ)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        torch.cuda._sleep(cycles)
        start.record()
        for _ in range(batch):
            fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1e3 / batch for s, e in zip(starts, ends))


def host_time_us(fn: Callable[[], object], *, batch: int = 100, batches: int = 30) -> float:
    """Median host time per call of ``fn()`` in microseconds, issuing ``batch`` calls
    between synchronizations so the launch queue never fills (which would time the GPU)."""
    samples = []
    fn()
    torch.cuda.synchronize()
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch * 1e6)
        torch.cuda.synchronize()
    return statistics.median(samples)


def wall_time_us(fn: Callable[[], object], *, reps: int = 200) -> float:
    """Median wall time per call including completion (synchronize after each call)."""
    samples = []
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def interleaved_wall_us(fns: dict[str, Callable[[], object]], *, rounds: int = 5, reps: int = 100) -> dict[str, float]:
    """``wall_time_us`` of each function, measured in turns (round 1: all of them, round
    2: all again, ...), the median over rounds for each: a host that slows down for a
    while slows every contender alike, not just the one timed then."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(wall_time_us(fn, reps=reps))
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}
