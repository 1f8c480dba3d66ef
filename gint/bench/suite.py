"""The benchmark suite: gint vs eager vs TorchInductor vs the device copy, on one GPU.

Every case is checked against eager PyTorch before it is timed. Device times are
CUDA-event medians after warm-up; inputs rotate among several sets so that small
cases are not timed out of L2. Random data only.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from gint.bench.timing import device_time_us, interleaved_wall_us

# The kernel's own speed: every subgraph in gint, none handed to eager (gint.conductor.choice).
KERNEL_ONLY = {"eager_when_faster": False}

OPS: list[Callable] = [
    lambda t, x: t * x,
    lambda t, x: t + x * 0.5,
    lambda t, x: torch.maximum(t, x) - 0.25,
    lambda t, x: t / (x.abs() + 1.0),
    lambda t, x: torch.where(t > x, t, x * 0.5),
    lambda t, x: torch.relu(t - x),
    lambda t, x: t * t - x,
    lambda t, x: torch.clamp(t, max=2.0) + x,
    lambda t, x: (t + x).neg() * 0.75,
    lambda t, x: t - x * 1.5,
]


def chain(n_inputs: int, n_ops: int) -> Callable:
    """A pointwise chain of ``n_ops`` ops cycling over ``n_inputs`` inputs."""

    def fn(*xs):
        t = xs[0]
        for k in range(n_ops):
            t = OPS[k % len(OPS)](t, xs[(k + 1) % n_inputs])
        return t

    fn.__name__ = f"chain_{n_inputs}in_{n_ops}ops"
    return fn


@dataclass
class Case:
    name: str
    fn: Callable
    n_inputs: int
    numel: int
    dtype: torch.dtype

    @property
    def bytes_moved(self) -> int:
        return (self.n_inputs + 1) * self.numel * torch.empty((), dtype=self.dtype).element_size()


def streaming_cases(quick: bool) -> list[Case]:
    sizes = [1 << 24] if quick else [1 << 22, 1 << 24, 1 << 26]
    shapes = [(1, 1), (4, 8)] if quick else [(1, 1), (2, 4), (4, 8), (4, 10), (1, 10)]
    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        for numel in sizes:
            for n_inputs, n_ops in shapes:
                fn = chain(n_inputs, n_ops)
                tag = "f32" if dtype == torch.float32 else "bf16"
                cases.append(Case(f"{fn.__name__}_{tag}_2^{int(math.log2(numel))}", fn, n_inputs, numel, dtype))
    return cases


def check(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> float:
    """Relative error ||got - want|| / ||want|| (float64); raises if it is too large or
    the nan/inf pattern differs. A norm, not elementwise: a chain with divisions
    legitimately amplifies one-ulp differences at a few ill-conditioned elements."""
    got, want = got.double(), want.double()
    if not torch.equal(torch.isfinite(got), torch.isfinite(want)):
        raise AssertionError("non-finite values differ")
    finite = torch.isfinite(want)
    error = ((got - want)[finite].norm() / want[finite].norm().clamp_min(1e-30)).item()
    limit = 1e-2 if dtype == torch.bfloat16 else 1e-4  # float32: Inductor fuses into FMAs (~5e-5 seen)
    if not error < limit:
        raise AssertionError(f"relative error {error:.2e} above {limit:.0e}")
    return error


def input_sets(case: Case, count: int) -> list[list[torch.Tensor]]:
    return [
        [torch.randn(case.numel, device="cuda").to(case.dtype) for _ in range(case.n_inputs)] for _ in range(count)
    ]


def rotating(fn: Callable, sets: list[list[torch.Tensor]]) -> Callable:
    state = {"i": 0}

    def call():
        state["i"] = (state["i"] + 1) % len(sets)
        return fn(*sets[state["i"]])

    return call


def copy_bandwidth() -> float:
    """Device copy bandwidth in GB/s (read + write), 2^26 float32."""
    src = torch.randn(1 << 26, device="cuda")
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / device_time_us(lambda: dst.copy_(src), reps=100) / 1e3


def run_streaming(cases: list[Case], copy_gbps: float, progress) -> list[dict]:
    rows = []
    for case in progress(cases):
        torch._dynamo.reset()
        sets = input_sets(case, 3 if case.numel >= 1 << 24 else 8)
        row = {"case": case.name, "numel": case.numel, "dtype": str(case.dtype), "inputs": case.n_inputs}
        row.update(compare(case.fn, sets, case.dtype, case.bytes_moved, copy_gbps))
        rows.append(row)
    return rows


def compare(fn: Callable, sets: list[list[torch.Tensor]], dtype: torch.dtype, bytes_moved: int, copy_gbps: float):
    """Check gint and Inductor against eager on the first input set, then time all three
    over the rotating sets: errors, times, fractions of copy bandwidth, ratios."""
    gint_fn = torch.compile(fn, backend="gint", options=KERNEL_ONLY)
    inductor_fn = torch.compile(fn)
    want = fn(*sets[0])
    row = {
        "gint_rel_error": check(gint_fn(*sets[0]), want, dtype),
        "inductor_rel_error": check(inductor_fn(*sets[0]), want, dtype),
    }
    times = {
        "eager": device_time_us(rotating(fn, sets)),
        "gint": device_time_us(rotating(gint_fn, sets)),
        "inductor": device_time_us(rotating(inductor_fn, sets)),
    }
    row.update({f"{k}_us": round(v, 2) for k, v in times.items()})
    row["gint_bw_fraction"] = round(bytes_moved / times["gint"] / 1e3 / copy_gbps, 3)
    row["inductor_bw_fraction"] = round(bytes_moved / times["inductor"] / 1e3 / copy_gbps, 3)
    row["gint_vs_inductor"] = round(times["gint"] / times["inductor"], 3)
    row["speedup_vs_eager"] = round(times["eager"] / times["gint"], 2)
    return row


def small_calls() -> dict:
    """Wall time per call of a 4-input 10-op chain on 4096 elements, and the host cost
    of one subgraph launch alone."""
    fn = chain(4, 10)
    xs = [torch.randn(4096, device="cuda") for _ in range(4)]
    torch._dynamo.reset()
    gint_fn = torch.compile(fn, backend="gint", options=KERNEL_ONLY)
    inductor_fn = torch.compile(fn)
    check(gint_fn(*xs), fn(*xs), torch.float32)
    check(inductor_fn(*xs), fn(*xs), torch.float32)
    floor_fn = dynamo_floor(fn)
    result = interleaved_wall_us(
        {
            "eager_wall_us": lambda: fn(*xs),
            "gint_wall_us": lambda: gint_fn(*xs),
            "inductor_wall_us": lambda: inductor_fn(*xs),
            "dynamo_floor_wall_us": lambda: floor_fn(*xs),
        }
    )
    import gint
    from gint.bench.timing import host_time_us

    subgraph = gint.explain(fn, *xs).subgraphs[0].callable
    subgraph(*xs)
    result["subgraph_call_host_us"] = host_time_us(lambda: subgraph(*xs))
    executable, layout = subgraph.executable, next(iter(subgraph._plans.values()))[-1]
    outs = [torch.empty_like(xs[0])]
    result["launch_only_host_us"] = host_time_us(lambda: executable.launch_planned(layout, [*xs, *outs]))
    return result


def dynamo_floor(fn: Callable) -> Callable:
    """``fn`` compiled by a backend whose graph does nothing (returns its first input):
    its wall time is dynamo's guards and call, the floor of any torch.compile backend."""
    return torch.compile(fn, backend=lambda gm, example_inputs: lambda *args: (args[0],))


def compile_latency(samples: int = 5) -> dict:
    """First result for a new graph in a warm process: gint vs Inductor."""

    def first_call(backend: str | None, k: int) -> float:
        fn = chain(3, 4 + k)  # a new structure each time
        xs = [torch.randn(1 << 16, device="cuda") for _ in range(3)]
        torch._dynamo.reset()
        compiled = torch.compile(fn, backend=backend) if backend else torch.compile(fn)
        torch.cuda.synchronize()
        start = time.perf_counter()
        compiled(*xs)
        torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3

    first_call("gint", 99)  # warm the process (imports, kernel load)
    gint_ms = [first_call("gint", k) for k in range(samples)]
    inductor_ms = [first_call(None, k) for k in range(2)]
    return {
        "gint_first_call_ms": round(statistics.median(gint_ms), 2),
        "inductor_first_call_ms": round(statistics.median(inductor_ms), 1),
    }
