"""Two builds of the interpreter on the same programs, in one run (one GPU).

``python tools/kernel_ab.py OTHER.ptx OTHER.cubin``: loads the package's kernel and
another build of the same instruction set (e.g. the previous commit's shipped PTX and
cubin), then times streaming chains (2^24 and 2^26 elements, f32 and bf16) and the row
programs (8192 x 4096) through gint with each, alternating A, B, A, and prints gint's
time per case and its fraction of the device copy bandwidth for each.
"""

import sys
from pathlib import Path

import torch

from gint.bench import rows
from gint.bench.suite import Case, chain, check, copy_bandwidth, input_sets, rotating
from gint.bench.timing import device_time_us
from gint.conductor import register_backend
from gint.host import launcher as launcher_module
from gint.kernel import interpreter


def other_launcher(ptx_path: Path, cubin_path: Path) -> launcher_module.KernelLauncher:
    """A launcher for the given build (the loader is pointed at its files while it loads)."""
    saved = interpreter.ptx, interpreter.shipped_cubin
    interpreter.ptx = lambda cc, config=None, **kw: ptx_path.read_text()
    interpreter.shipped_cubin = lambda cc, config=None: cubin_path.read_bytes()
    try:
        return launcher_module.KernelLauncher(0)
    finally:
        interpreter.ptx, interpreter.shipped_cubin = saved


def cases() -> list[tuple[str, object, list[list[torch.Tensor]], int, torch.dtype]]:
    found = []
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for numel in (1 << 24, 1 << 26):
            for n_inputs, n_ops in ((1, 1), (2, 4), (4, 8), (1, 10)):
                fn = chain(n_inputs, n_ops)
                case = Case(f"{fn.__name__}_{tag}_2^{numel.bit_length() - 1}", fn, n_inputs, numel, dtype)
                found.append((case.name, fn, input_sets(case, 3), case.bytes_moved, dtype))
    for row in rows.cases(quick=True):
        found.append((row.name, row.fn, rows.input_sets(row), row.bytes_moved(), row.dtype))
    return found


def main() -> None:
    register_backend()
    shipped = launcher_module.launcher_for(0)
    other = other_launcher(Path(sys.argv[1]), Path(sys.argv[2]))
    copy = copy_bandwidth()
    print(f"copy {copy:.0f} GB/s; A = package kernel, B = {Path(sys.argv[1]).name}")
    for name, fn, sets, bytes_moved, dtype in cases():
        torch._dynamo.reset()
        compiled = torch.compile(fn, backend="gint", options={"eager_when_faster": False})
        want = fn(*sets[0])
        cells = []
        for label, launcher in (("A", shipped), ("B", other), ("A", shipped)):
            launcher_module.use_launcher(0, launcher)
            check(compiled(*sets[0]), want, dtype)
            us = device_time_us(rotating(compiled, sets))
            cells.append(f"{label} {us:8.1f} us ({bytes_moved / us / 1e3 / copy:.3f})")
        launcher_module.use_launcher(0, shipped)
        print(f"{name:<26}", "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
