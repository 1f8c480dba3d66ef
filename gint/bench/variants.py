"""Kernel-variant ablation: the same programs under several ``KernelConfig`` and
block sizes, measured in one run (bandwidth as a fraction of torch's device copy)."""

from __future__ import annotations

import torch

from gint.bench.timing import device_time_us
from gint.host.executor import prepare
from gint.host.frontend import bytecode, maximum
from gint.host.launcher import CudaError, KernelLauncher, use_launcher
from gint.kernel.config import KernelConfig

CONFIGS = [
    KernelConfig(prefetch=1),  # the default
    KernelConfig(prefetch=0),
    KernelConfig(prefetch=1, backend="nvvm"),  # NVVM's compare-tree dispatch
]
BLOCKS = [256]


@bytecode
def copy(x, out):
    out.store(x.load())


@bytecode
def add(x, y, out):
    out.store(x.load() + y.load())


@bytecode
def chain8(a, b, c, d, out):
    x, y = a.load(), b.load()
    t = x * y + c.load()
    t = t * d.load() - x
    out.store(maximum(t, y) / (y * y + 1.0))


def _cases(numel: int):
    f32 = [torch.randn(numel, device="cuda") for _ in range(5)]
    b16 = [t.bfloat16() for t in f32[:2]]
    return {
        "copy_f32": (copy, f32[:2], 8),
        "add_f32": (add, f32[:3], 12),
        "chain8_f32": (chain8, f32[:5], 20),
        "copy_bf16": (copy, b16, 4),
    }


def run(numel: int = 1 << 26) -> list[dict]:
    cases = _cases(numel)
    copy_src = torch.randn(numel, device="cuda")
    copy_dst = torch.empty_like(copy_src)
    copy_bw = 8 * numel / device_time_us(lambda: copy_dst.copy_(copy_src)) / 1e3
    rows = []
    for config in CONFIGS:
        for block in BLOCKS:
            try:
                launcher = KernelLauncher(0, config, block)
            except CudaError as error:
                print(config.tag, block, error)
                continue
            use_launcher(0, launcher)
            row = {"config": config.tag, "block": block, "max_grid": launcher.max_grid}
            for name, (program, tensors, bytes_per_element) in cases.items():
                executable = prepare(program.program)
                layout = executable.plan(tensors)
                tensors[-1].fill_(float("nan"))
                executable.launch_planned(layout, tensors)
                torch.cuda.synchronize()
                assert not tensors[-1].isnan().any(), f"{name} left elements unwritten"
                t = device_time_us(lambda: executable.launch_planned(layout, tensors))
                row[name] = round(bytes_per_element * numel / t / 1e3 / copy_bw, 3)
            rows.append(row)
            print(row, flush=True)
    use_launcher(0, KernelLauncher(0))
    return [{"copy_GBps": copy_bw, "numel": numel}] + rows
