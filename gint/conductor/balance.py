"""The per-subgraph choice revisited against the whole graph (option ``graph_balance``).

``gint.conductor.choice`` decides each subgraph signature alone, charging each way the
larger of its host issue time and its device time. A whole graph costs roughly the larger
of its *summed* host time and its *summed* device time, so where a graph is host-bound a
way's device time is partly free, and where it is device-bound its host time is. On the
H100 (2026-12-06) transformers' BERT bf16 forward is host-bound (eager: 1.55 ms of device
work in 3-4 ms of wall time); the choice declined all 18 of its subgraph signatures (a
declined one issues 3-5 eager kernels where gint issues one launch), and the graph ran in
4.65 ms where every subgraph in gint took 4.34.

With the option on, a compiled graph measures itself once its subgraphs have decided: the
second call's host time, the third call's device time (queued behind a GPU sleep longer
than the host needs to issue the call, so the figure is the GPU's work, not its waits).
``rebalance`` then switches timed signatures between gint and eager, greedily, while that
lowers max(host, device) of the graph by the switch's own timed host and device deltas.
Both ways compute the same values, so a switch changes no result's dtype or shape and
costs no recompile. Nothing is measured off the GPU, under a CUDA graph capture, or for a
graph with no timed subgraph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from gint import stats
from gint.conductor.choice import Timing

CYCLES_PER_US = 2_000  # torch.cuda._sleep's unit, about (a ~2 GHz clock)
MAX_SLEEP_US = 50_000
MIN_GAIN_US = 1.0  # a switch must lower the graph's estimate by more than this


@dataclass(frozen=True)
class Candidate:
    """One timed signature of one subgraph, and the way it runs now."""

    subgraph: object
    key: tuple
    timing: Timing
    use_gint: bool

    def delta(self) -> tuple[float, float]:
        """(host, device) change of the graph if this signature switched ways."""
        t = self.timing
        if self.use_gint:
            return t.eager_host - t.gint_host, t.eager_device - t.gint_device
        return t.gint_host - t.eager_host, t.gint_device - t.eager_device


def rebalance(candidates: list[Candidate], host_us: float, device_us: float) -> list[Candidate]:
    """The candidates to switch, in the order taken: each time the one that lowers
    max(host, device) the most, until none lowers it by more than ``MIN_GAIN_US``."""
    host, device = host_us, device_us
    remaining, taken = list(candidates), []
    while remaining:
        best, best_cost = None, max(host, device) - MIN_GAIN_US
        for candidate in remaining:
            dh, dd = candidate.delta()
            cost = max(host + dh, device + dd)
            if cost < best_cost:
                best, best_cost = candidate, cost
        if best is None:
            break
        dh, dd = best.delta()
        host, device = host + dh, device + dd
        remaining.remove(best)
        taken.append(best)
    return taken


class GraphBalance:
    """Wraps a compiled graph's forward: calls 2 and 3 measure it, then ``rebalance``."""

    def __init__(self, forward, subgraphs: list):
        self.forward = forward
        self.subgraphs = [s for s in subgraphs if s.choose]
        self.calls = 0
        self.host_us: float | None = None
        self.done = not self.subgraphs or not torch.cuda.is_available()

    def __call__(self, *args):
        if self.done:
            return self.forward(*args)
        if torch.cuda.is_current_stream_capturing():
            self.done = True
            return self.forward(*args)
        self.calls += 1
        if self.calls == 1:  # the subgraphs decide
            return self.forward(*args)
        if self.calls == 2:
            began = time.perf_counter()
            out = self.forward(*args)
            self.host_us = (time.perf_counter() - began) * 1e6
            return out
        self.done = True
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(int(min(self.host_us * 1.5, MAX_SLEEP_US) * CYCLES_PER_US))
        start.record()
        out = self.forward(*args)
        end.record()
        end.synchronize()
        self.apply(rebalance(self.candidates(), self.host_us, start.elapsed_time(end) * 1000.0))
        return out

    def candidates(self) -> list[Candidate]:
        found = []
        for sub in self.subgraphs:
            decision = sub.decisions.get(sub.last_key)
            if decision is not None and decision.timing is not None:
                found.append(Candidate(sub, sub.last_key, decision.timing, decision.use_gint))
        return found

    @staticmethod
    def apply(switches: list[Candidate]) -> None:
        for candidate in switches:
            sub, key = candidate.subgraph, candidate.key
            sub.switch(key, not candidate.use_gint)
            sub.decisions[key] = replace(sub.decisions[key], use_gint=not candidate.use_gint, reason="graph balance")
            stats.bump("subgraphs_rebalanced")
