"""Static SASS cost of gint programs on built kernels, without a GPU (issues 15 and 16).

    python tools/sass_cost.py [CUBIN ...]      (default: the shipped default kernel)

Reads each cubin with cuobjdump (PyPI's ``nvidia-cuda-cuobjdump``, next to ptxas) and
readelf: where the cases branch back to (the join), the dispatch from there to its
``BRX`` (a range check's branch taken, as for every valid key), and whether the jump
table is indexed from key 0 or from 9 (a VIADD first). Programs come from the backend
under Numba's simulator (so run it with ``NUMBA_ENABLE_CUDASIM=1``): the bench's
streaming chains and norms and BERT's residual add + layer_norm, f32 and bf16. Printed per
program: bytecode instructions per tile (row programs: per chunk in the loops, and once
per row), the LOADs among them (each a memory round trip of its own), and per kernel the dispatch's SASS per element a thread handles (8 per tile or
chunk). The cases' own SASS are not counted: their paths branch on data (fast and
general memory paths, the dtype tables), which a straight walk of the SASS gets wrong
(../shared/notes/kernel-sass.md has hand-read figures per case).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

import gint
from gint import isa
from gint.bench.suite import chain
from gint.kernel import interpreter
from gint.kernel.config import DEFAULT, for_capability
from gint.kernel.resources import find_ptxas

EPT = DEFAULT.ept
_INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


class Kernel:
    """A cubin's instructions and its dispatch."""

    def __init__(self, cubin: Path):
        cuobjdump = Path(find_ptxas()).with_name("cuobjdump")
        sass = subprocess.run([str(cuobjdump), "-sass", str(cubin)], capture_output=True, text=True, check=True)
        self.code = [(int(m.group(1), 16), m.group(2)) for m in map(_INSTRUCTION.search, sass.stdout.splitlines()) if m]
        self.index = {address: k for k, (address, _) in enumerate(self.code)}
        targets = Counter(text.split()[-1] for _, text in self.code if text.startswith("BRA "))
        self.join = int(targets.most_common(1)[0][0], 16)  # where every case's last BRA goes
        self.dispatch, self.base = self._walk_dispatch()

    def _walk_dispatch(self) -> tuple[int, int]:
        """SASS from the join to the dispatch's BRX (the range check's branch taken), and
        the first key of the table (9 where the key is offset first, else 0)."""
        k, count, base, previous = self.index[self.join], 0, 0, ""
        while True:
            _, text = self.code[k]
            count += 1
            if text.startswith("VIADD") and text.endswith("0xfffffff7"):
                base = 9
            if text.startswith("BRX"):
                return count, base
            target = re.match(r"(@!?P\d )?BRA (0x[0-9a-f]+)", text)
            if target and (target.group(1) is None or previous.startswith("ISETP.GT.U32")):
                k = self.index[int(target.group(2), 16)]
            else:
                k += 1
            previous = text



def programs() -> dict[str, tuple]:
    """Name -> (program, depths) of the bench's chains and norms, compiled by the backend."""
    found = {}
    rows, cols = 8, 768
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        cases = {f"chain_{i}in_{o}ops": (chain(i, o), i) for i, o in ((1, 1), (2, 4), (4, 8), (1, 10))}
        x, r = torch.randn(rows, cols, dtype=dtype), torch.randn(rows, cols, dtype=dtype)
        w, b = torch.randn(cols, dtype=dtype), torch.randn(cols, dtype=dtype)
        norms = {
            "rms_norm": lambda x, w: F.rms_norm(x, (cols,), w, 1e-6),
            "softmax": lambda x, w: torch.softmax(x, -1),
            "layer_norm": lambda x, w: F.layer_norm(x, (cols,), w, None, 1e-5),
            "add_layer_norm (BERT)": lambda x, w: F.layer_norm(x + r, (cols,), w, b, 1e-12),
        }
        for name, (fn, inputs) in cases.items():
            found[f"{name} {tag}"] = fn, [torch.randn(4096, dtype=dtype) for _ in range(inputs)]
        for name, fn in norms.items():
            found[f"{name} {tag}"] = fn, [x, w]
    out = {}
    for name, (fn, args) in found.items():
        torch._dynamo.reset()
        report = gint.explain(fn, *args)
        executable = report.subgraphs[0].callable.executable
        out[name] = executable.program, executable.depths
    return out


_LOAD = isa.BY_NAME["LOAD"].opcode


def dispatches(program) -> tuple[int, int, int, int]:
    """Bytecode instructions a thread runs per tile (or per chunk of a row, in the loops) and
    once per row outside the loops; then the LOADs among each: each is a round trip to
    memory of its own, since no load survives a dispatch (../shared/notes/kernel-sass.md)."""
    loops = program.loop_bodies()
    inside = {k for body in loops for k in body} if loops else set(range(len(program.code)))
    outside = set(range(len(program.code))) - inside
    loads = [k for k, (op, _) in enumerate(program.code) if op == _LOAD]
    return len(inside), len(outside), sum(k in inside for k in loads), sum(k in outside for k in loads)


def main(argv: list[str]) -> None:
    cubins = [Path(p) for p in argv] or [interpreter.prebuilt_cubin_path((9, 0), for_capability((9, 0), DEFAULT))]
    kernels = [Kernel(c) for c in cubins]
    for path, kernel in zip(cubins, kernels, strict=True):
        print(f"{path.name}: {kernel.dispatch + 1} SASS per dispatch (the case's branch back included), "
              f"table from key {kernel.base}")
    names = "".join(f"  {p.name[:20]:>20}" for p in cubins)
    print(f"\n{'program':<28}{'per tile/chunk':>15}{'per row':>8}{'loads: tile/chunk':>18}{'row':>5}{names}")
    print(f"{'':<28}{'dispatches':>15}{'':>8}{'(round trips)':>18}{'':>5}" + f"  {'dispatch SASS/elem':>20}" * len(cubins))
    for name, (program, _) in programs().items():
        each, row, loads, row_loads = dispatches(program)
        cells = "".join(f"  {each * (k.dispatch + 1) / EPT:>20.1f}" for k in kernels)
        print(f"{name:<28}{each:>15}{row:>8}{loads:>18}{row_loads:>5}{cells}")


if __name__ == "__main__":
    main(sys.argv[1:])
