"""Process-wide event counters, read through ``gint.counters()``."""

from __future__ import annotations

import threading
from collections import Counter

NAMES = (
    "graphs_compiled",
    "graphs_without_aot",
    "graphs_failed",  # graphs gint could not compile, run eagerly instead
    "subgraphs_run_eagerly",  # subgraph calls with a layout the kernel cannot run
    "subgraphs_declined",  # subgraph input signatures eager ran faster: they run eagerly (gint.conductor.choice)
    "subgraphs_rebalanced",  # timed signatures switched between gint and eager for the whole graph (balance)
    "programs_built",
    "kernel_builds",
    "launches",
    "launches_multi_row",  # of them, on the multi-row tile kernel (rows much shorter than a tile)
    "fallback_nodes",
    "cats_to_clones",  # cats of one tensor and empty ones, copied as a clone gint can fuse (gint.conductor.copies)
    "clones_dropped",  # clones of graphs that mutate nothing, where nobody needs the copy (gint.conductor.copies)
)

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def bump(name: str, amount: int = 1) -> None:
    if name not in NAMES:
        raise KeyError(f"unknown counter {name!r}")
    with _lock:
        _counts[name] += amount


def snapshot() -> dict[str, int]:
    """A copy of every counter, zeros included."""
    with _lock:
        return {name: _counts[name] for name in NAMES}


def reset() -> None:
    with _lock:
        _counts.clear()
