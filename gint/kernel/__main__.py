"""``python -m gint.kernel --ptxas [--json] [--cc 9.0]``: the interpreter's register,
spill, stack and shared-memory usage from ptxas (no GPU needed)."""

import argparse
import json
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.kernel", description=__doc__)
    parser.add_argument("--ptxas", action="store_true", help="report ptxas resource usage")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0, the H100)")
    args = parser.parse_args(argv)
    if not args.ptxas:
        parser.print_help()
        return 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("unset NUMBA_ENABLE_CUDASIM: PTX is built by the real Numba CUDA compiler", file=sys.stderr)
        return 2
    from gint.kernel.resources import measure

    major, minor = (int(p) for p in args.cc.split("."))
    report = measure((major, minor))
    if args.json:
        from gint.kernel.resources import kernel_abi

        print(json.dumps({**report.as_dict(), "abi": kernel_abi((major, minor))}, indent=2))
    else:
        print(report.ptxas)
        print(
            f"\n{report.arch}: {report.registers} registers, {report.stack_frame_bytes} B stack frame, "
            f"{report.spill_store_bytes} B spill stores, {report.spill_load_bytes} B spill loads, "
            f"{report.shared_bytes} B shared"
        )
    # a stack frame of at most 32 B is libdevice's trig range reduction (see tests/test_kernel_build.py)
    clean = report.spill_store_bytes == report.spill_load_bytes == 0 and report.stack_frame_bytes <= 32
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
