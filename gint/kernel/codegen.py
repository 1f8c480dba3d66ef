"""Generate the interpreter kernel's Python source from the instruction table.

The stack lives in registers only if no stack index is computed at run time, so the
kernel has one case per (instruction, stack depth): stack entry ``p`` of element
``k`` is the local variable ``s{p}_{k}``, and every case reads and writes fixed
variables. The assembler puts ``dispatch_key(opcode, depth)`` in the program, so the
kernel never tracks a stack pointer. All threads of a block read the same
instruction, so dispatch is uniform across each warp.

Each block walks tiles of the iteration domain: a tile is ``blockDim * EPT``
consecutive elements of one row (the innermost domain dimension). A thread's
``EPT`` elements come in ``GROUPS`` runs of ``VEC`` consecutive elements, run ``g``
of thread ``t`` starting at ``(g * blockDim + t) * VEC``: each run is one vector
access and each warp-wide access is contiguous.

The next instruction is fetched before the current one executes, so its load
latency overlaps the work (the encoder pads programs so the fetch past HALT stays
in bounds). With ``prefetch``, a LOAD also asks the memory system to bring the
same slot's tile ``prefetch`` grid strides ahead into L2 (one bulk prefetch by one
thread), so the bytes in flight no longer depend on how many registers the
stack leaves for more threads.

``EPT``, ``VEC`` and ``prefetch`` come from a ``KernelConfig``.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache

from gint import abi, isa
from gint.abi import MAX_DIMS
from gint.isa import MAX_DEPTH, MAX_SLOTS, SLOT_BITS
from gint.kernel.config import DEFAULT, KernelConfig

_SLOT_MASK = (1 << SLOT_BITS) - 1
_I = "    "


def stack_var(position: int, element: int) -> str:
    return f"s{position}_{element}"


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.copy_location(ast.Name(self.names[node.id], node.ctx), node)
        return node


def _substitute(expr: str, names: dict[str, str]) -> str:
    tree = _Rename(names).visit(ast.parse(expr, mode="eval"))
    return ast.unparse(tree)


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return [_I * levels + line for line in lines]


class _Generator:
    """Writes the kernel for one ``KernelConfig``."""

    def __init__(self, config: KernelConfig):
        self.config = config
        self.ept, self.vec, self.groups = config.ept, config.vec, config.groups

    # -- instruction cases -----------------------------------------------------

    def moves(self, ins: isa.Instr, depth: int) -> list[str]:
        """A pure instruction: read the popped entries, write the pushed ones."""
        first = depth - ins.pops
        lines = []
        for k in range(self.ept):
            reads = {name: f"t{j}" for j, name in enumerate(ins.inputs)}
            lines += [f"t{j} = {stack_var(first + j, k)}" for j in range(ins.pops)]
            for j, name in enumerate(ins.outputs):
                value = f"fresh({reads[name]})" if name in reads else _substitute(ins.expr, reads)
                lines.append(f"{stack_var(first + j, k)} = {value}")
        return lines

    def slot_prologue(self) -> list[str]:
        dims = MAX_DIMS
        outer = " + ".join(f"o{d} * sh_stride[slot * {dims} + {d}]" for d in range(dims - 1))
        return [
            f"slot = arg & {_SLOT_MASK}",
            f"offset = arg >> {SLOT_BITS}",
            "base = sh_base[slot]",
            "dtype = sh_dtype[slot]",
            f"step = sh_stride[slot * {dims} + {dims - 1}]",
            f"row_start = {outer}",
        ]

    def group(self, position: int, g: int) -> str:
        return ", ".join(stack_var(position, g * self.vec + v) for v in range(self.vec))

    def load(self, depth: int) -> list[str]:
        lines = self.slot_prologue()
        if self.config.prefetch:
            ahead = f"chunk_start + {self.config.prefetch} * grid_len"
            lines += [
                "if single_row and tid == 0 and step == 1:",
                _I + f"prefetch_row_l2(base, dtype, row_start, {ahead}, tile_len, row)",
            ]
        return lines + [
            f"{self.group(depth, g)} = load_group(base, dtype, row_start, step, j{g} + offset, row)"
            for g in range(self.groups)
        ]

    def store(self, depth: int) -> list[str]:
        return self.slot_prologue() + [
            f"store_group(base, dtype, row_start, step, j{g} + offset, row, {self.group(depth - 1, g)})"
            for g in range(self.groups)
        ]

    def const(self, depth: int) -> list[str]:
        return ["imm = bits_to_f32(arg)"] + [f"{stack_var(depth, k)} = fresh(imm)" for k in range(self.ept)]

    def by_position(self, count: int, body) -> list[str]:
        """Branch on the DEPTH operand; ``body(n)`` handles position n below the top."""
        lines = []
        for n in range(count):
            lines.append(f"{'if' if n == 0 else 'elif'} arg == {n}:")
            lines += _indent(body(n))
        return lines or ["pass"]

    def pick(self, depth: int) -> list[str]:
        return self.by_position(
            depth, lambda n: [f"{stack_var(depth, k)} = fresh({stack_var(depth - 1 - n, k)})" for k in range(self.ept)]
        )

    def poke(self, depth: int) -> list[str]:
        return self.by_position(
            depth - 1,
            lambda n: [f"{stack_var(depth - 2 - n, k)} = fresh({stack_var(depth - 1, k)})" for k in range(self.ept)],
        )

    def case_body(self, ins: isa.Instr, depth: int) -> list[str]:
        """The kernel statements for ``ins`` executed at stack ``depth``."""
        special = {"LOAD": self.load, "STORE": self.store, "CONST": self.const, "PICK": self.pick, "POKE": self.poke}
        if ins.name in special:
            return special[ins.name](depth)
        return self.moves(ins, depth)

    def dispatch(self) -> list[str]:
        lines = []
        for ins in isa.TABLE:
            if ins is isa.HALT:
                continue
            for depth in isa.specializations(ins):
                key = isa.dispatch_key(ins.opcode, depth)
                lines.append(f"{'if' if not lines else 'elif'} key == {key}:  # {ins.name} @{depth}")
                lines += _indent(self.case_body(ins, depth))
        # HALT, and any key the verifier would never emit, ends the program.
        return lines + ["else:", _I + "break"]

    # -- kernel skeleton -------------------------------------------------------

    def prologue(self) -> list[str]:
        bases = ", ".join(f"base{s}" for s in range(MAX_SLOTS))
        header, rec, dims = abi.HEADER, abi.SLOT_RECORD, MAX_DIMS
        outer = " * ".join(f"d{d}" for d in range(dims - 1))
        body = [
            f"sh_base = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_dtype = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_stride = cuda.shared.array({MAX_SLOTS * dims}, int64)",
            "tid = cuda.threadIdx.x",
            "if tid == 0:",
            *_indent([f"sh_base[{s}] = base{s}" for s in range(MAX_SLOTS)]),
            f"if tid < {MAX_SLOTS}:",
            _I + f"sh_dtype[tid] = table[{header} + tid * {rec}]",
            f"if tid < {MAX_SLOTS * dims}:",
            _I + f"sh_stride[tid] = table[{header} + (tid // {dims}) * {rec} + 1 + tid % {dims}]",
            "cuda.syncthreads()",
            *[f"d{d} = table[{d}]" for d in range(dims - 1)],
            f"row = table[{dims - 1}]",
            "width = cuda.blockDim.x",
            f"tile_len = width * {self.ept}",
            "grid_len = cuda.gridDim.x * tile_len",
            "tiles_per_row = (row + tile_len - 1) // tile_len",
            f"n_tiles = {outer} * tiles_per_row",
            f"single_row = {outer} == 1",
            "tile = int64(cuda.blockIdx.x)",
        ]
        return [f"def {abi.KERNEL_NAME}(code, table, {bases}):"] + _indent(body)

    def tile_loop(self) -> list[str]:
        outer = MAX_DIMS - 1
        split = ["rest = tile // tiles_per_row", "chunk = tile - rest * tiles_per_row"]
        for d in reversed(range(outer)):
            split += ["o0 = rest"] if d == 0 else [f"o{d} = rest % d{d}", f"rest = rest // d{d}"]
        lines = ["if single_row:", _I + "chunk = tile", *_indent([f"o{d} = int64(0)" for d in range(outer)])]
        lines += ["else:", *_indent(split)]
        lines += [
            "chunk_start = chunk * tile_len",
            f"j0 = chunk_start + tid * {self.vec}",
            *[f"j{g} = j0 + {g * self.vec} * width" for g in range(1, self.groups)],
            *[f"{stack_var(p, k)} = fresh(ZERO)" for p in range(MAX_DEPTH) for k in range(self.ept)],
            "key = code[0]",
            "arg = code[1]",
            "pc = 2",
            "while True:",
        ]
        loop = ["next_key = code[pc]", "next_arg = code[pc + 1]", "pc += 2", *self.dispatch()]
        lines += _indent(loop + ["key = next_key", "arg = next_arg"])
        lines.append("tile += cuda.gridDim.x")
        return _indent(["while tile < n_tiles:"] + _indent(lines))

    def source(self) -> str:
        helpers = ", ".join(["load_group", "store_group", "prefetch_row_l2", *expression_helpers()])
        head = [
            f'"""Generated by gint.kernel.codegen from gint.isa for {self.config}; do not edit."""',
            "from numba import cuda",
            "from numpy import float32, int64",
            f"from gint.kernel.device import {helpers}",
            "from gint.kernel.memory import bits_to_f32, fresh",
            "",
            "ZERO = float32(0.0)",
        ]
        return "\n".join(head) + "\n\n\n" + "\n".join(self.prologue() + self.tile_loop()) + "\n"


def expression_helpers() -> list[str]:
    """Device functions that instruction expressions call (they live in gint.kernel.device)."""
    names: set[str] = set()
    for ins in isa.TABLE:
        if ins.expr is not None:
            tree = ast.parse(ins.expr, mode="eval")
            names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(ins.inputs)
    return sorted(names)


@lru_cache(maxsize=None)
def kernel_source(config: KernelConfig = DEFAULT) -> str:
    """The whole interpreter module source, deterministic for a given ISA, ABI and config."""
    return _Generator(config).source()


def source_digest(config: KernelConfig = DEFAULT) -> str:
    """Changes whenever the generated kernel, or the device code it calls, changes."""
    from pathlib import Path

    digest = hashlib.sha256(kernel_source(config).encode())
    here = Path(__file__).parent
    for dependency in ("device.py", "memory.py", "mathfn.py"):
        digest.update((here / dependency).read_bytes())
    return digest.hexdigest()[:16]
