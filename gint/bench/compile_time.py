"""``python -m gint.bench --compile``: gint's own compile time per node on synthetic graphs.

A chain of ``n`` pointwise operators over two inputs (``t * 0.5 + y`` and
``sigmoid(t) - y`` alternating: 2 ATen nodes a step), and shorter chains with a
softmax every 8 steps (row reductions), compiled from scratch by ``gint.explain``
(no launch). Reports the first call's wall time and, inside it, gint's passes: the
ATen trace (``make_fx``), the composite expansion, the partitioner, the compilation of
the partitions (lowering, scheduling, encoding, verifying), and the rest of
``compile_forward``; what is left of the wall time is dynamo's tracing and the call
itself (``dynamo_and_call_s``: on the CPU, the simulator runs the kernel once per
subgraph). Runs on the CPU (the simulator's target) as well as on a GPU.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable

import torch

SIZES = (100, 1000, 3000)
# chains with a softmax every 8 steps: the partitioner re-schedules a row program per probe
# (2026-12-06, 2-CPU machine: 80 steps 3.6 s, 160 steps 23 s of partitioning; issue 17)
SOFTMAX_SIZES = (20, 40, 80)


def chain(steps: int, softmax_every: int = 0) -> Callable:
    def fn(x, y):
        t = x
        for i in range(steps):
            t = t * 0.5 + y if i % 2 == 0 else torch.sigmoid(t) - y
            if softmax_every and i % softmax_every == softmax_every - 1:
                t = torch.softmax(t, -1)
        return t

    return fn


@contextlib.contextmanager
def timing_passes():
    """Seconds spent in each of gint's passes while the block runs."""
    from gint.conductor import backend, composites
    from gint.conductor.compiler import GintCompiler
    from gint.conductor.partitioner import GraphPartitioner

    spent: dict[str, float] = defaultdict(float)
    patches = [
        (backend, "compile_forward", "compile_forward"),
        (backend, "trace_for_inference", "trace (make_fx)"),
        (composites, "expand", "composites"),
        (GraphPartitioner, "plan", "partition"),
        (GintCompiler, "compile", "compile partitions"),
    ]
    originals = []
    for owner, name, label in patches:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - start

        setattr(owner, name, timed)
    try:
        yield spent
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def measure(steps: int, softmax_every: int, device) -> dict:
    import gint

    torch._dynamo.reset()
    x, y = torch.randn(4, 64, device=device), torch.randn(4, 64, device=device)
    with timing_passes() as spent:
        start = time.perf_counter()
        report = gint.explain(chain(steps, softmax_every), x, y)
        wall = time.perf_counter() - start
    nodes = max(report.compute_nodes, 1)
    gint_own = spent["trace (make_fx)"] + spent["compile_forward"]
    row = {
        "graph": f"chain of {steps}" + (f", softmax every {softmax_every}" if softmax_every else ""),
        "aten_nodes": report.compute_nodes,
        "subgraphs": len(report.subgraphs),
        "coverage": round(report.coverage, 3),
        "first_call_s": round(wall, 3),
        "gint_us_per_node": round(gint_own / nodes * 1e6, 1),
    }
    row.update({f"{k}_s": round(v, 4) for k, v in spent.items()})
    row["dynamo_and_call_s"] = round(wall - gint_own, 3)
    return row


def run(sizes=SIZES, progress=lambda items: items, softmax_sizes=SOFTMAX_SIZES) -> list[dict]:
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    cases = [(n, 0) for n in sizes] + [(n, 8) for n in softmax_sizes]
    return [measure(n, k, device) for n, k in progress(cases)]


def summary(rows: list[dict]) -> list[str]:
    lines = [f"{'graph':<32} {'nodes':>6} {'subgr':>5} {'wall s':>7} {'gint us/node':>12} {'trace':>6} "
             f"{'compos.':>7} {'part.':>6} {'compile':>7} {'dyn+call':>8}"]
    for r in rows:
        lines.append(
            f"{r['graph']:<32} {r['aten_nodes']:>6} {r['subgraphs']:>5} {r['first_call_s']:>7.2f} "
            f"{r['gint_us_per_node']:>12.0f} {r.get('trace (make_fx)_s', 0):>6.2f} {r.get('composites_s', 0):>7.3f} "
            f"{r.get('partition_s', 0):>6.2f} {r.get('compile partitions_s', 0):>7.2f} {r['dynamo_and_call_s']:>8.2f}"
        )
    return lines
