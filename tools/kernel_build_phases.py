"""Time the phases of a kernel build from source (an empty cache), for issue 28.

    python tools/kernel_build_phases.py        # as gint builds it: gint.kernel.fastlive + fastssa
    python tools/kernel_build_phases.py --numba-liveness [--check] [--numba-ssa]

``--numba-liveness`` builds with numba's own ``compute_live_map``; ``--check`` then also
runs gint's solver on every call and asserts the same answer (its time is left out of
the figures). ``--numba-ssa``: numba's SSA pass without ``gint.kernel.fastssa``'s memo.
Prints a phase table (seconds), the 12 slowest Numba passes, the peak memory and
digests of the LLVM IR and the PTX (set ``GINT_PHASES_IR_OUT`` to keep the IR). Compare
LLVM IR between runs under one ``PYTHONHASHSEED``: Numba's output depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

times: dict[str, float] = defaultdict(float)
counts: dict[str, int] = defaultdict(int)
_left_out = [0.0]  # seconds of --check work, subtracted from every timer it ran inside


def timed(key, function):
    def wrapper(*args, **kwargs):
        start, left_out = time.perf_counter(), _left_out[0]
        try:
            return function(*args, **kwargs)
        finally:
            times[key] += time.perf_counter() - start - (_left_out[0] - left_out)
            counts[key] += 1

    return wrapper


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _declarations_sorted(ptx: str) -> str:
    """``ptx`` with its ``.common .global`` NumbaEnv declarations (one per device
    function, in the run-to-run order of numba-cuda's set of libraries) sorted."""
    lines = ptx.splitlines()
    spots = [i for i, line in enumerate(lines) if line.startswith(".common .global") and "NumbaEnv" in line]
    for i, line in zip(spots, sorted(lines[i] for i in spots)):
        lines[i] = line
    return "\n".join(lines)


class _Nothing:
    installed = staticmethod(contextlib.nullcontext)


def instrument(numba_liveness: bool, check: bool, numba_ssa: bool) -> dict:
    import llvmlite.binding as llvm
    from numba.cuda.core import compiler_machinery

    from gint.kernel import fastlive, interpreter, nvptx

    digests = {}
    kernel_llvm_ir = nvptx.kernel_llvm_ir

    def llvm_ir(*args):
        modules = kernel_llvm_ir(*args)
        digests["llvm_ir"] = _digest("\n".join(modules))
        # numba-cuda keeps the device functions' libraries in a set: their order changes
        # from run to run (with numba's own liveness too), so compare them as a sorted list
        digests["llvm_ir sorted"] = _digest("\n".join(sorted(modules)))
        if os.environ.get("GINT_PHASES_IR_OUT"):
            with open(os.environ["GINT_PHASES_IR_OUT"], "w") as f:
                f.write("\n".join(sorted(modules)))
        return modules

    nvptx.kernel_llvm_ir = timed("numba (typing + lowering)", llvm_ir)
    nvptx.merge_switch_chains = timed("switch merge", nvptx.merge_switch_chains)
    llvm.ModulePassManager.run = timed("LLVM O3", llvm.ModulePassManager.run)
    llvm.TargetMachine.emit_assembly = timed("NVPTX", llvm.TargetMachine.emit_assembly)
    run_pass = compiler_machinery.PassManager._runPass

    def pass_timer(self, index, pss, state):
        return timed(f"pass {pss.name()}", run_pass)(self, index, pss, state)

    compiler_machinery.PassManager._runPass = pass_timer
    if numba_ssa:
        interpreter.fastssa = _Nothing
    if not numba_liveness:
        fastlive.live_map = timed("live map", fastlive.live_map)
        return digests
    interpreter.fastlive = _Nothing
    import numba.core.analysis
    import numba.cuda.core.analysis

    originals = {numba.core.analysis.compute_live_map, numba.cuda.core.analysis.compute_live_map}
    for name, module in list(sys.modules.items()):
        function = vars(module).get("compute_live_map") if name.startswith("numba") else None
        if function in originals:
            module.compute_live_map = timed("live map", _checked(function, fastlive.live_map) if check else function)
    return digests


def _checked(original, solver):
    def compute_live_map(cfg, blocks, var_use_map, var_def_map):
        expected = original(cfg, blocks, var_use_map, var_def_map)
        start = time.perf_counter()
        got = solver(cfg, blocks, var_use_map, var_def_map)
        assert got is not None and list(got) == list(expected) and got == expected, "live maps differ"
        counts["checked"] += 1
        times["check (left out)"] += time.perf_counter() - start
        _left_out[0] += time.perf_counter() - start
        return expected

    return compute_live_map


def _time_gc() -> None:
    started = {}

    def callback(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        else:
            times[f"GC gen{info['generation']}"] += time.perf_counter() - started.pop("t", time.perf_counter())
            counts[f"GC gen{info['generation']}"] += 1

    gc.callbacks.append(callback)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numba-liveness", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--numba-ssa", action="store_true")
    parser.add_argument("--ptx-out", help="write the PTX here")
    args = parser.parse_args()
    os.environ["GINT_CACHE_DIR"] = tempfile.mkdtemp(prefix="gint-phases-")
    from gint.kernel import interpreter
    from gint.kernel.resources import find_ptxas

    digests = instrument(args.numba_liveness, args.check, args.numba_ssa)
    _time_gc()
    start = time.perf_counter()
    text = interpreter.ptx((9, 0), from_source=True)
    times["ptx() total"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "k.ptx")
        with open(source, "w") as f:
            f.write(text)
        begin = time.perf_counter()
        report = subprocess.run(
            [find_ptxas(), "-arch=sm_90", "-v", source, "-o", os.path.join(tmp, "k.cubin")],
            capture_output=True,
            text=True,
            check=True,
        )
        times["ptxas"] = time.perf_counter() - begin
    times["total (build + ptxas)"] = times["ptx() total"] + times["ptxas"]
    if args.ptx_out:
        with open(args.ptx_out, "w") as f:
            f.write(text)
    main_keys = ["numba (typing + lowering)", "pass reconstruct_ssa", "live map", "LLVM O3", "switch merge", "NVPTX"]
    main_keys += ["GC gen0", "GC gen1", "GC gen2", "ptxas", "ptx() total", "total (build + ptxas)", "check (left out)"]
    for key in main_keys:
        print(f"{key:32s} {times[key]:9.1f} s  ({counts[key]} calls)")
    print("\nslowest Numba passes (all functions, seconds):")
    passes = sorted((k for k in times if k.startswith("pass ")), key=times.get, reverse=True)
    for key in passes[:12]:
        print(f"  {key[5:]:40s} {times[key]:8.1f}  ({counts[key]} runs)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB; checked {counts['checked']} live maps")
    print(f"LLVM IR sha256 {digests.get('llvm_ir')}, modules sorted {digests.get('llvm_ir sorted')}")
    print(f"PTX sha256 {_digest(text)}, NumbaEnv declarations sorted {_digest(_declarations_sorted(text))}")
    lines = (report.stdout + report.stderr).splitlines()
    print("\n".join(line for line in lines if "registers" in line or "stack" in line))


if __name__ == "__main__":
    main()
