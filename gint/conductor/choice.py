"""Never slower than eager: a gint subgraph runs in gint only where gint measured faster.

The first call of a compiled subgraph with a new input signature (shapes, strides,
dtypes) on a GPU times both ways of running it on the caller's stream: the gint launch
and its eager twin (the partition's ATen nodes, ``gint.conductor.fallback``), a few
runs each, alternating; a way's cost is the larger of its host issue time and its
device time (CUDA events, runs queued behind a short GPU sleep). The faster way is
kept for that signature: later calls with it pay one dict lookup and time nothing. Both ways compute the same
values (eager's own kernels, or gint's, within eager's tolerance), so the choice never
changes a result's dtype or shape and never costs a recompile.

Costs and limits, by design:
- The deciding call waits once for the GPU (the events' elapsed times), and runs the
  subgraph ``2 * RUNS + 2`` times. A subgraph whose inputs change signature on every
  call (a new sequence length each time) is timed for its first ``MAX_TIMED``
  signatures only; after that a new signature takes the choice those agreed on, or
  gint where they disagreed.
- Nothing is timed while a CUDA graph is captured (torch's graph trees warm up first,
  so their signatures are decided before capture), nor under Numba's CUDA simulator
  (its times say nothing about a GPU): there gint runs, unless a test forces a choice.
- ``options={"eager_when_faster": False}`` turns it off (benchmarks of the kernel).

``gint.explain`` lists each decision with both times; the counter
``subgraphs_declined`` counts the signatures handed to eager.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

RUNS = 3  # timed runs of each way
SLEEP_CYCLES = 2_000_000  # ~1 ms of GPU sleep before the timed runs (once per decision)
MAX_TIMED = 8  # signatures timed per subgraph


@dataclass(frozen=True)
class Timing:
    """Each way's host issue time and device time per call, microseconds (best of the runs)."""

    gint_host: float
    gint_device: float
    eager_host: float
    eager_device: float

    @staticmethod
    def flat(gint_us: float, eager_us: float) -> Timing:
        """Host and device time alike (a forced choice: tests, benchmarks)."""
        return Timing(gint_us, gint_us, eager_us, eager_us)

    @property
    def gint(self) -> float:
        return max(self.gint_host, self.gint_device)

    @property
    def eager(self) -> float:
        return max(self.eager_host, self.eager_device)


@dataclass(frozen=True)
class Decision:
    """How one input signature of a subgraph runs, and why."""

    use_gint: bool
    gint_us: float | None = None  # cost per call, best of the timed runs (None: not timed)
    eager_us: float | None = None
    reason: str = ""
    timing: Timing | None = None  # each way's host and device time apart (None: not timed)

    def __str__(self) -> str:
        way = "gint" if self.use_gint else "eager"
        if self.gint_us is None:
            return f"{way} ({self.reason})"
        why = f" ({self.reason})" if self.reason else ""
        return f"{way}: gint {self.gint_us:.1f} us, eager {self.eager_us:.1f} us{why}"


def time_both(run_gint: Callable[[], object], run_eager: Callable[[], object]) -> tuple[Timing, object, object]:
    """Each way's host and device time per call in microseconds, and each way's last outputs.

    A call costs what the slower of its two sides costs in a stream of calls: the host's
    time to issue it, or the GPU's time to run it. The GPU's is timed with CUDA events
    behind a short device-side sleep, so that the host has queued the runs before the GPU
    reaches them (else a way that issues many small kernels would be charged the host's
    gaps as GPU time: on the H100, BERT's layer_norm subgraph timed 228 us eagerly that
    way against 104 us of device time). Best of ``RUNS``, alternating; waits for the GPU
    once."""
    outputs = [run_gint(), run_eager()]  # warm: uploads, allocator, eager's kernel caches
    events = [[torch.cuda.Event(enable_timing=True) for _ in range(4)] for _ in range(RUNS)]
    host = [[], []]
    torch.cuda._sleep(SLEEP_CYCLES)
    for start_g, end_g, start_e, end_e in events:
        start_g.record()
        began = time.perf_counter()
        outputs[0] = run_gint()
        host[0].append(time.perf_counter() - began)
        end_g.record()
        start_e.record()
        began = time.perf_counter()
        outputs[1] = run_eager()
        host[1].append(time.perf_counter() - began)
        end_e.record()
    events[-1][-1].synchronize()
    timing = Timing(
        gint_host=min(host[0]) * 1e6,
        gint_device=min(s.elapsed_time(e) for s, e, _, _ in events) * 1000.0,
        eager_host=min(host[1]) * 1e6,
        eager_device=min(s.elapsed_time(e) for _, _, s, e in events) * 1000.0,
    )
    return timing, outputs[0], outputs[1]


# Tests replace this to force a choice where nothing can be timed (the simulator).
timer: Callable | None = None


def decide(
    run_gint: Callable[[], object],
    run_eager: Callable[[], object],
    device: torch.device,
    earlier: list[Decision],
) -> tuple[Decision, object]:
    """The decision for a new signature and the outputs of the way it chose (already
    computed: the deciding call runs no extra time)."""
    measure = timer
    if measure is None:
        if device.type != "cuda":
            return Decision(True, reason="not timed off the GPU"), run_gint()
        if torch.cuda.is_current_stream_capturing():
            return Decision(True, reason="not timed during CUDA graph capture"), run_gint()
        measure = time_both
    timed = [d for d in earlier if d.gint_us is not None]
    if len(timed) >= MAX_TIMED:
        choices = {d.use_gint for d in timed}
        if len(choices) == 1:
            use_gint, reason = choices.pop(), f"as all {len(timed)} timed signatures chose"
        else:
            use_gint, reason = True, f"not timed: the first {len(timed)} timed signatures disagreed"
        return Decision(use_gint, reason=reason), (run_gint() if use_gint else run_eager())
    try:
        timing, gint_out, eager_out = measure(run_gint, run_eager)
    except Exception as error:  # noqa: BLE001 - timing is an optimization: never fail the call for it
        return Decision(True, reason=f"not timed: {type(error).__name__}: {error}"[:200]), run_gint()
    use_gint = timing.gint <= timing.eager
    return Decision(use_gint, timing.gint, timing.eager, timing=timing), (gint_out if use_gint else eager_out)
