"""The interpreter's GPU resource usage, read from ``ptxas -v`` with no GPU needed.

A spill or a stack frame means part of the register-resident stack went to local
memory (the upstream project measured a local-memory stack 14x slower), so the test
suite fails on either; this is how CI guards kernel quality without a GPU.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


def kernel_abi(cc: tuple[int, int] = (9, 0)) -> dict:
    """The kernel's parameter list as PTX sees it, and Numba's array argument layout:
    the raw launcher (``gint.host.launcher``) packs parameters by hand and relies on both."""
    from numba import types
    from numba.cuda.descriptor import cuda_target

    from gint.kernel import interpreter

    model = cuda_target.target_context.data_model_manager[types.int32[::1]]
    return {"params": interpreter.entry_params(interpreter.ptx(cc)), "array_fields": list(model._fields)}


@dataclass(frozen=True)
class Resources:
    arch: str
    registers: int
    stack_frame_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_bytes: int
    ptxas: str

    def as_dict(self) -> dict:
        return asdict(self)


def find_ptxas() -> str:
    """ptxas from the pinned CUDA wheel (``cuda-toolkit[nvcc]``), else from PATH."""
    try:
        import nvidia.cu13 as cu13

        for root in cu13.__path__:
            candidate = Path(root) / "bin" / "ptxas"
            if candidate.exists():
                return str(candidate)
    except ImportError:
        pass
    found = shutil.which("ptxas")
    if found is None:
        raise FileNotFoundError("ptxas not found: pip install 'cuda-toolkit[nvcc]==13.0.*' or put ptxas on PATH")
    return found


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else 0


def measure(
    cc: tuple[int, int] = (9, 0), config=None, *, from_source: bool = False, rebuild: bool = False
) -> Resources:
    """Fetch (or build: ``interpreter.ptx``'s flags) the interpreter's PTX for ``cc`` and
    run ``ptxas -v`` on it."""
    from gint.kernel import interpreter

    arch = f"sm_{cc[0]}{cc[1]}"
    ptxas = find_ptxas()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "gint.ptx")
        config = config or interpreter.DEFAULT
        Path(source).write_text(interpreter.ptx(cc, config, from_source=from_source, rebuild=rebuild))
        result = subprocess.run(
            [ptxas, f"-arch={arch}", "-v", source, "-o", os.path.join(tmp, "gint.cubin")],
            capture_output=True,
            text=True,
        )
    report = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{report}")
    return Resources(
        arch=arch,
        registers=_number(r"Used (\d+) registers", report),
        stack_frame_bytes=_number(r"(\d+) bytes stack frame", report),
        spill_store_bytes=_number(r"(\d+) bytes spill stores", report),
        spill_load_bytes=_number(r"(\d+) bytes spill loads", report),
        shared_bytes=_number(r"(\d+) bytes smem", report),
        ptxas=report.strip(),
    )
