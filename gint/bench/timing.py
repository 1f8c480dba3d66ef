"""Timing helpers: CUDA events around device work, medians after warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def device_time_us(fn: Callable[[], object], *, warmup: int = 5, reps: int = 50) -> float:
    """Median device time of ``fn()`` in microseconds, each rep bracketed by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends))


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
