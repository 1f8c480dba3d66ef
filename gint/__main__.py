"""``python -m gint``: compile a function with ``backend="gint"``, show its partitions
and bytecode, run it and check it against eager PyTorch.

On a machine without a GPU it runs the real interpreter under Numba's CUDA simulator,
on CPU tensors of a small default size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _choose_device() -> str:
    import torch

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported (by gint below)
    return "cpu"


def example(x, y, z):
    """A small model-like block: a scaled, soft-clipped update with one eager op."""
    h = torch.relu(x * y - 0.5) * (z.abs() + 1)
    h = torch.where(h > 1.0, h / (h + 1), h)
    return h - torch.flip(y, [0]) * 0.01  # flip is not a gint op: it runs eagerly


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint", description=__doc__)
    parser.add_argument("--size", type=int, default=4096, help="elements per tensor (default 4096)")
    args = parser.parse_args(argv)
    device = _choose_device()

    global torch
    import torch

    import gint
    from gint.conductor import register_backend

    register_backend()
    where = "GPU" if device == "cuda" else "Numba's CUDA simulator (no GPU here)"
    print(f"gint {gint.__version__}: running on {where}, {args.size} elements per tensor\n")
    gen = torch.Generator(device=device).manual_seed(0)
    x, y, z = (torch.randn(args.size, device=device, generator=gen) for _ in range(3))

    report = gint.explain(example, x, y, z)
    print(report)
    for i, sub in enumerate(report.subgraphs):
        print(f"\nbytecode of subgraph {i}:\n{sub.disassembly}")

    compiled = torch.compile(example, backend="gint")
    start = time.perf_counter()
    got = compiled(x, y, z)
    first = time.perf_counter() - start
    want = example(x, y, z)
    torch.testing.assert_close(got, want)
    print(f"\ncheck against eager PyTorch: OK (max abs error {(got - want).abs().max().item():.2e})")
    print(f"first call (dynamo + gint compile + run): {first * 1e3:.0f} ms")
    if device == "cuda":
        from gint.bench.timing import wall_time_us

        print(f"per call: gint {wall_time_us(lambda: compiled(x, y, z)):.1f} us, "
              f"eager {wall_time_us(lambda: example(x, y, z)):.1f} us")
    print(f"counters: {gint.counters()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
