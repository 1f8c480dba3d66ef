"""``python -m gint.kernel --ptxas [--json] [--cc 9.0] [--from-source | --rebuild]``: the
interpreter's register, spill, stack and shared-memory usage from ptxas (no GPU needed).

``--from-source`` checks Numba's build of the current source instead of the shipped PTX:
it builds (about a minute) unless the dev cache (``$GINT_CACHE_DIR``, else
``~/.cache/gint``) already holds a build of this exact source digest, which it reuses
(seconds). ``--rebuild`` always builds and replaces the cached copy.

``python -m gint.kernel --prebuild``: build the PTX for sm_90 from source, of the
default kernel and of the multi-row tile kernel, and store them and their cubins
(ptxas) in the package (``gint/kernel/prebuilt``), replacing those of older sources. Run it after
changing the instruction table or the kernel and commit the file."""

import argparse
from dataclasses import replace
import json
import os
import sys


def prebuild() -> int:
    """The default kernel and the multi-row tile kernel, PTX and cubin, for sm_90."""
    import subprocess

    from gint.kernel import interpreter
    from gint.kernel.config import DEFAULT, TILED, for_capability
    from gint.kernel.resources import find_ptxas

    cc = (9, 0)
    written = []
    for config in (for_capability(cc, DEFAULT), for_capability(cc, TILED)):
        target = interpreter.prebuilt_path(cc, config)
        text = interpreter.ptx(cc, config, from_source=True)  # the dev cache's build of this source, if any
        cubin = interpreter.prebuilt_cubin_path(cc, config)
        interpreter.PREBUILT_DIR.mkdir(exist_ok=True)
        target.write_text(text)
        subprocess.run([find_ptxas(), f"-arch=sm_{cc[0]}{cc[1]}", str(target), "-o", str(cubin)], check=True)
        written += [target, cubin]
    for stale in interpreter.PREBUILT_DIR.glob("gint_*"):
        if stale not in written:
            stale.unlink()
    print("wrote " + ", ".join(p.name for p in written))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.kernel", description=__doc__)
    parser.add_argument("--ptxas", action="store_true", help="report ptxas resource usage")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0, the H100)")
    parser.add_argument(
        "--from-source", action="store_true", help="Numba's build of this source (cached), not the shipped PTX"
    )
    parser.add_argument("--rebuild", action="store_true", help="build with Numba even if this source's build is cached")
    parser.add_argument("--prebuild", action="store_true", help="build and store the shipped PTX (default and multi-row tile kernels) for sm_90")
    parser.add_argument(
        "--multi-row-tiles", action="store_true", help="with --ptxas: the kernel with KernelConfig.multi_row_tiles on"
    )
    args = parser.parse_args(argv)
    if not (args.ptxas or args.prebuild):
        parser.print_help()
        return 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("unset NUMBA_ENABLE_CUDASIM: PTX is built by the real Numba CUDA compiler", file=sys.stderr)
        return 2
    if args.prebuild:
        return prebuild()
    from gint.kernel.resources import measure

    major, minor = (int(p) for p in args.cc.split("."))
    from gint.kernel.config import DEFAULT

    config = replace(DEFAULT, multi_row_tiles=True) if args.multi_row_tiles else DEFAULT
    report = measure((major, minor), config, from_source=args.from_source, rebuild=args.rebuild)
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
