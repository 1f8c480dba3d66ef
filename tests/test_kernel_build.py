"""Kernel quality without a GPU: the real Numba CUDA compiler builds the interpreter
for sm_90 and ptxas reports no spills and no interpreter stack in local memory."""

import kernel_build_job
import pytest

from gint.host.launcher import ARRAY_FIELDS, N_PARAMS

TRIG_REDUCTION_BYTES = 32  # 28 rounded up to ptxas's 8-byte frame granularity


@pytest.fixture(scope="module")
def ptxas_report():
    return kernel_build_job.report()  # started in the background when collection ended


def test_no_spills_and_no_stack_frame(ptxas_report):
    assert ptxas_report["arch"] == "sm_90"
    assert ptxas_report["spill_store_bytes"] == 0, ptxas_report["ptxas"]
    assert ptxas_report["spill_load_bytes"] == 0, ptxas_report["ptxas"]
    # The only local memory allowed is libdevice's sinf/cosf/tanf range reduction for
    # |x| > 105615 (7 words, 28 bytes, touched only on that path): the interpreter's
    # stack and the math registers stay in registers.
    assert ptxas_report["stack_frame_bytes"] <= TRIG_REDUCTION_BYTES, ptxas_report["ptxas"]
    # a block of 256 threads must fit the register file (65536 registers per SM)
    assert 0 < ptxas_report["registers"] * 256 <= 65536


def test_launcher_packs_parameters_as_the_kernel_expects(ptxas_report):
    abi = ptxas_report["abi"]
    assert abi["array_fields"] == list(ARRAY_FIELDS)
    # every parameter is one 8-byte word (NVVM spells it .u64, LLVM's NVPTX back end .b64)
    assert len(abi["params"]) == N_PARAMS
    assert set(abi["params"]) <= {".u64", ".b64"}, abi["params"]


@pytest.mark.parametrize("tiled", [False, True], ids=["default", "multi_row_tiles"])
def test_the_package_ships_ptx_of_this_source(tiled):
    """A changed instruction table or kernel needs ``python -m gint.kernel --prebuild``
    (else a fresh machine builds the kernel itself, for minutes, on its first launch; the
    multi-row tile kernel is not used at all without its shipped PTX)."""
    from gint.kernel import interpreter
    from gint.kernel.config import DEFAULT, TILED, for_capability

    configs = [for_capability((9, 0), DEFAULT), for_capability((9, 0), TILED)]
    shipped = interpreter.prebuilt_path((9, 0), configs[tiled])
    expected = {interpreter.prebuilt_path((9, 0), c) for c in configs}
    others = [p.name for p in interpreter.PREBUILT_DIR.glob("*.ptx") if p not in expected]
    assert shipped.exists(), f"no {shipped.name}: run python -m gint.kernel --prebuild and commit it"
    assert not others, f"stale shipped PTX {others}: python -m gint.kernel --prebuild removes it"
    cubin = interpreter.prebuilt_cubin_path((9, 0), configs[tiled])
    assert cubin.read_bytes()[:4] == b"\x7fELF", f"{cubin.name} missing or not a cubin: --prebuild writes it"
    assert _same_build(shipped, cubin), f"{cubin.name} is not ptxas's output for {shipped.name}: --prebuild"


# The multi-row tile kernel may spill this much: ptxas puts 44 B of stores and 52 B of
# loads in its per-tile code (the tile loop's head and back edge, the row-coordinate
# division), none in an instruction's case (gint/kernel/tilecode.py). It runs only the
# layouts whose rows leave a one-row tile mostly idle, and there it measured 27x faster
# (H100, 2026-12-06, bench --layouts: head-major rows of 64, 1,326 -> 49 us; rotary over
# them 2,416 -> 93 us): a rule of 0 spills would keep that from users.
TILED_SPILL_BYTES = 64


def test_multi_row_tile_kernel_resources():
    import re
    import subprocess

    from gint.kernel import interpreter
    from gint.kernel.config import TILED, for_capability
    from gint.kernel.resources import find_ptxas

    shipped = interpreter.prebuilt_path((9, 0), for_capability((9, 0), TILED))
    out = subprocess.run(
        [find_ptxas(), "-v", "-arch=sm_90", str(shipped), "-o", "/dev/null"], capture_output=True, text=True, check=True
    )
    report = out.stderr
    stores, loads = (int(n) for n in re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report).groups())
    registers = int(re.search(r"Used (\d+) registers", report).group(1))
    assert stores <= TILED_SPILL_BYTES and loads <= TILED_SPILL_BYTES, report
    assert 0 < registers * 256 <= 65536, report


def _same_build(ptx, cubin) -> bool:
    """Whether ``cubin`` is ptxas's output for ``ptx`` (checked by rebuilding it)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from gint.kernel.resources import find_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "k.cubin"
        subprocess.run([find_ptxas(), "-arch=sm_90", str(ptx), "-o", str(out)], check=True)
        return out.read_bytes() == cubin.read_bytes()


def test_one_build_job_per_test_run(tmp_path):
    """Every xdist worker calls ``kernel_build_job.start`` with the run's directory: one
    job starts, and every process reads its report."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    worker = (
        "import json, sys, kernel_build_job as job\n"
        "job.command = lambda: [sys.executable, '-c', 'import json, os; print(json.dumps({\"pid\": os.getpid()}))']\n"
        f"job.start({str(tmp_path)!r})\n"
        "print(json.dumps(job.report()))\n"
    )
    env = {"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", worker]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    reports = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    assert len({r["pid"] for r in reports}) == 1, reports
    assert (tmp_path / "status").read_text() == "0"
