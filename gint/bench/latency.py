"""Cold start, caches, new shapes and CUDA graphs: ``python -m gint.bench --latency``.

Figures (all wall-clock seconds or milliseconds on this machine):
- ``kernel_build_cold_s``: building the interpreter's PTX with an empty disk cache
  (Numba typing and lowering, LLVM's NVPTX back end), in a fresh process.
- ``new_process``: a fresh process with a warm disk cache, from interpreter start to
  the first compiled result (imports, dynamo, gint's compile, loading the kernel);
  ``new_process_no_driver_cache`` the same with the driver's JIT cache disabled, as on a
  machine's first run.
- ``new_graph``: first result for a new graph in a warm process, split into what
  dynamo and tracing take and what gint's own compile takes; gint through AOT
  autograd, dynamo alone (``backend="eager"``) and Inductor alongside.
- ``new_shape``: first call at a new shape of an already compiled function, for
  ``dynamic=None`` (its one recompile, then none) and ``dynamic=True``; Inductor alongside.
- ``cuda_graphs``: wall time per small call with and without ``options={"cuda_graphs": True}``,
  through AOT autograd (``direct_inference`` off), and the floor of any dynamo backend
  (guards and the call of a compiled graph that returns an input).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from gint.bench.suite import chain, check, dynamo_floor
from gint.bench.timing import interleaved_wall_us

_FIRST_RESULT = """
import time, torch
start = time.perf_counter()
import gint.conductor
gint.conductor.register_backend()
def f(a, b, c):
    return torch.relu(a * b - c) * 0.5 + c
xs = [torch.randn(1 << 16, device="cuda") for _ in range(3)]
torch.cuda.synchronize()
ready = time.perf_counter()
out = torch.compile(f, backend="gint")(*xs)
torch.cuda.synchronize()
done = time.perf_counter()
torch.testing.assert_close(out, f(*xs))
print(ready - start, done - ready)
"""

_BUILD = """
import time
start = time.perf_counter()
from gint.kernel.interpreter import ptx
ptx((9, 0))
print(time.perf_counter() - start)
"""


def _python(code: str, env: dict | None = None) -> tuple[float, list[float]]:
    """Run ``code`` in a fresh interpreter: (wall seconds, numbers it printed)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{result.stderr[-2000:]}")
    return wall, [float(v) for v in result.stdout.split()]


def cold_build() -> dict:
    with tempfile.TemporaryDirectory() as empty:
        wall, (build,) = _python(_BUILD, {"GINT_CACHE_DIR": empty})
    return {"kernel_build_cold_s": round(build, 1), "process_wall_s": round(wall, 1)}


def new_process(env: dict | None = None) -> dict:
    samples = [_python(_FIRST_RESULT, env) for _ in range(3)]
    return {
        "process_to_first_result_s": round(statistics.median(w for w, _ in samples), 2),
        "imports_and_inputs_s": round(statistics.median(v[0] for _, v in samples), 2),
        "first_compiled_call_s": round(statistics.median(v[1] for _, v in samples), 3),
    }


class _Timed:
    """Accumulates time spent in one function (to split gint's share of a compile)."""

    def __init__(self, module, name: str):
        self.module, self.name, self.seconds = module, name, 0.0
        self.original = getattr(module, name)

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


def _first_call_ms(compiled, xs) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    compiled(*xs)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def new_graph(samples: int = 5) -> dict:
    """First result of a new graph: gint (its own compile timed inside), gint through AOT
    autograd (``direct_inference`` off), dynamo alone (``backend="eager"``: the floor any
    dynamo backend pays) and Inductor."""
    from gint.conductor import backend

    xs = [torch.randn(1 << 16, device="cuda") for _ in range(3)]
    torch._dynamo.reset()
    torch.compile(chain(3, 3), backend="gint")(*xs)  # warm the process
    totals, gint_share = [], []
    for k in range(samples):
        torch._dynamo.reset()
        with _Timed(backend, "compile_forward") as timed:
            totals.append(_first_call_ms(torch.compile(chain(3, 4 + k), backend="gint"), xs))
        gint_share.append(timed.seconds * 1e3)

    def first_results(count: int, **kwargs) -> float:
        times = []
        for k in range(count):
            torch._dynamo.reset()
            times.append(_first_call_ms(torch.compile(chain(3, 4 + k), **kwargs), xs))
        return round(statistics.median(times), 1)

    return {
        "gint_first_result_ms": round(statistics.median(totals), 1),
        "gint_compile_graph_ms": round(statistics.median(gint_share), 2),
        "dynamo_and_tracing_ms": round(statistics.median(t - g for t, g in zip(totals, gint_share)), 1),
        "gint_through_aot_first_result_ms": first_results(samples, backend="gint", options={"direct_inference": False}),
        "dynamo_eager_backend_first_result_ms": first_results(samples, backend="eager"),
        "inductor_first_result_ms": first_results(2),
    }


def new_shape() -> dict:
    fn = chain(3, 6)
    sizes = [1 << 16, (1 << 16) + 129, (1 << 17) + 7, (1 << 18) - 3]
    result = {}
    for label, backend, dynamic in [
        ("gint_dynamic_none", "gint", None),
        ("gint_dynamic_true", "gint", True),
        ("inductor_dynamic_none", None, None),
    ]:
        torch._dynamo.reset()
        compiled = torch.compile(fn, backend=backend, dynamic=dynamic) if backend else torch.compile(fn)
        times = []
        for n in sizes:
            xs = [torch.randn(n, device="cuda") for _ in range(3)]
            times.append(_first_call_ms(compiled, xs))
            check(compiled(*xs), fn(*xs), torch.float32)
        result[label] = {"first_shape_ms": round(times[0], 1), "new_shape_ms": [round(t, 2) for t in times[1:]]}
    return result


def cuda_graphs() -> dict:
    fn = chain(4, 10)
    xs = [torch.randn(4096, device="cuda") for _ in range(4)]
    contenders = {"eager_wall_us": lambda: fn(*xs)}
    for label, kwargs in [
        ("gint_wall_us", {"backend": "gint"}),
        ("gint_through_aot_wall_us", {"backend": "gint", "options": {"direct_inference": False}}),
        ("gint_cuda_graphs_wall_us", {"backend": "gint", "options": {"cuda_graphs": True}}),
        ("inductor_wall_us", {}),
        ("inductor_reduce_overhead_wall_us", {"mode": "reduce-overhead"}),
    ]:
        compiled = torch.compile(fn, **kwargs)
        for _ in range(3):
            check(compiled(*xs), fn(*xs), torch.float32)
        contenders[label] = lambda c=compiled: c(*xs)
    floor = dynamo_floor(fn)
    contenders["dynamo_floor_wall_us"] = lambda: floor(*xs)
    return interleaved_wall_us(contenders)


def run(cold: bool = True) -> dict:
    from gint.conductor import register_backend

    register_backend()
    report = {}
    if cold:
        report["cold_build"] = cold_build()
    report["new_process"] = new_process()
    # as on a machine's first run: the driver's JIT cache off (the shipped cubin needs no JIT)
    report["new_process_no_driver_cache"] = new_process({"CUDA_CACHE_DISABLE": "1"})
    report["new_graph"] = new_graph()
    report["new_shape"] = new_shape()
    report["cuda_graphs"] = cuda_graphs()
    return report
