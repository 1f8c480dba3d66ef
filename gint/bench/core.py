"""Core figures: launch overhead and the bandwidth of copy/add programs against
PyTorch's device copy, on the current GPU."""

from __future__ import annotations

import ctypes

import torch

from gint.bench.timing import device_time_us, host_time_us
from gint.host.executor import prepare, run
from gint.host.frontend import bytecode


@bytecode
def copy_program(x, out):
    out.store(x.load())


@bytecode
def add_program(x, y, out):
    out.store(x.load() + y.load())


def bandwidth(numel: int = 1 << 26, dtype=torch.float32) -> dict:
    """GB/s (bytes read + written) of torch's copy, gint copy and gint add."""
    x, y = (torch.randn(numel, device="cuda").to(dtype) for _ in range(2))
    out = torch.empty_like(x)
    size = x.element_size() * numel
    figures = {}
    t = device_time_us(lambda: out.copy_(x))
    figures["torch_copy"] = {"us": t, "GBps": 2 * size / t / 1e3}
    copy = prepare(copy_program.program)
    layout = copy.plan([x, out])
    copy_program(x, out)
    torch.testing.assert_close(out, x)
    t = device_time_us(lambda: copy.launch_planned(layout, [x, out]))
    figures["gint_copy"] = {"us": t, "GBps": 2 * size / t / 1e3}
    add = prepare(add_program.program)
    layout = add.plan([x, y, out])
    add_program(x, y, out)
    torch.testing.assert_close(out, x + y)
    t = device_time_us(lambda: add.launch_planned(layout, [x, y, out]))
    figures["gint_add"] = {"us": t, "GBps": 3 * size / t / 1e3}
    t = device_time_us(lambda: torch.add(x, y, out=out))
    figures["torch_add"] = {"us": t, "GBps": 3 * size / t / 1e3}
    copy_bw = figures["torch_copy"]["GBps"]
    for entry in figures.values():
        entry["fraction_of_copy"] = entry["GBps"] / copy_bw
    return {"numel": numel, "dtype": str(dtype), **figures}


def launch_overhead() -> dict:
    """Host microseconds per launch: gint's raw path, the validating executor, a torch op,
    and Numba's own dispatcher with 8 array arguments for comparison."""
    x, y = (torch.randn(4096, device="cuda") for _ in range(2))
    out = torch.empty_like(x)
    add = prepare(add_program.program)
    layout = add.plan([x, y, out])
    figures = {
        "gint_launch_us": host_time_us(lambda: add.launch_planned(layout, [x, y, out])),
        "gint_executor_run_us": host_time_us(lambda: run(add_program.program, [x, y, out])),
        "torch_add_us": host_time_us(lambda: torch.add(x, y, out=out)),
    }
    from gint.host.launcher import current_stream, launcher_for

    launcher = launcher_for(0)
    add.launch_planned(layout, [x, y, out])
    prepared = add._prepare(x.device, layout)  # the cached launch, its parameters valid for x, y, out
    raw_args = (launcher.function, 1, 1, 1, launcher.block, 1, 1, 0, current_stream(0), prepared._param_ptrs, None)
    figures["ctypes_cuLaunchKernel_only_us"] = host_time_us(lambda: launcher.cu.lib.cuLaunchKernel(*raw_args))
    probe = ctypes.c_void_p()
    figures["ctypes_trivial_call_us"] = host_time_us(lambda: launcher.cu.lib.cuCtxGetCurrent(ctypes.byref(probe)))
    try:
        from numba import cuda

        @cuda.jit
        def eight(a, b, c, d, e, f, g, h):
            i = cuda.grid(1)
            if i < a.size:
                h[i] = a[i] + b[i]

        tensors = [torch.randn(4096, device="cuda") for _ in range(8)]
        figures["numba_dispatcher_8_tensors_us"] = host_time_us(
            lambda: eight[16, 256](*tensors), batch=20, batches=10
        )
    except Exception as error:  # a comparison only: report, don't fail
        figures["numba_dispatcher_error"] = repr(error)
    return figures
