"""Kernel quality without a GPU: the real Numba CUDA compiler builds the interpreter
for sm_90 and ptxas reports no spills and no local-memory stack frame."""

import json
import os
import subprocess
import sys

import pytest

from gint.host.launcher import ARRAY_FIELDS, N_PARAMS


@pytest.fixture(scope="module")
def ptxas_report():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run(
        [sys.executable, "-m", "gint.kernel", "--ptxas", "--json"], capture_output=True, text=True, env=env
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return json.loads(result.stdout)


def test_no_spills_and_no_stack_frame(ptxas_report):
    assert ptxas_report["arch"] == "sm_90"
    assert ptxas_report["spill_store_bytes"] == 0, ptxas_report["ptxas"]
    assert ptxas_report["spill_load_bytes"] == 0, ptxas_report["ptxas"]
    assert ptxas_report["stack_frame_bytes"] == 0, ptxas_report["ptxas"]
    # a block of 256 threads must fit the register file (65536 registers per SM)
    assert 0 < ptxas_report["registers"] * 256 <= 65536


def test_launcher_packs_parameters_as_the_kernel_expects(ptxas_report):
    abi = ptxas_report["abi"]
    assert abi["array_fields"] == list(ARRAY_FIELDS)
    # every parameter is one 8-byte word (NVVM spells it .u64, LLVM's NVPTX back end .b64)
    assert len(abi["params"]) == N_PARAMS
    assert set(abi["params"]) <= {".u64", ".b64"}, abi["params"]
