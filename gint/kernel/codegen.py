"""Generate the interpreter kernel's Python source from the instruction table.

The stack lives in registers only if no stack index is computed at run time, so the
kernel has one case per (instruction, stack depth): stack entry ``p`` of element
``k`` is the local variable ``s{p}_{k}``, and every case reads and writes fixed
variables. The assembler puts ``dispatch_key(opcode, depth)`` in the program, so the
kernel never tracks a stack pointer. All threads of a block read the same
instruction, so dispatch is uniform across each warp.

Each block walks tiles of the iteration domain: a tile is ``blockDim * EPT``
consecutive elements of one row (the innermost domain dimension); thread ``t``
handles elements ``t, t + blockDim, ...`` so every load and store is coalesced.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache

from gint import abi, isa
from gint.abi import EPT, MAX_DIMS
from gint.isa import MAX_DEPTH, MAX_SLOTS, SLOT_BITS

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


def _moves(ins: isa.Instr, depth: int) -> list[str]:
    """A pure instruction: read the popped entries, write the pushed ones."""
    first = depth - ins.pops
    lines = []
    for k in range(EPT):
        current = {name: stack_var(first + j, k) for j, name in enumerate(ins.inputs)}
        reads = {name: f"t{j}" for j, name in enumerate(ins.inputs)}
        lines += [f"{reads[name]} = {var}" for name, var in current.items()]
        for j, name in enumerate(ins.outputs):
            value = reads[name] if name in reads else _substitute(ins.expr, reads)
            lines.append(f"{stack_var(first + j, k)} = {value}")
    return lines


def _slot_prologue() -> list[str]:
    mask, dims = _SLOT_MASK, MAX_DIMS
    outer = " + ".join(f"o{d} * sh_stride[slot * {dims} + {d}]" for d in range(dims - 1))
    return [
        f"slot = arg & {mask}",
        f"offset = arg >> {SLOT_BITS}",
        "base = sh_base[slot]",
        "dtype = sh_dtype[slot]",
        f"step = sh_stride[slot * {dims} + {dims - 1}]",
        f"row_start = {outer}",
    ]


def _load(depth: int) -> list[str]:
    return _slot_prologue() + [
        f"{stack_var(depth, k)} = load_at(base, dtype, row_start, step, i{k} + offset, row)"
        for k in range(EPT)
    ]


def _store(depth: int) -> list[str]:
    return _slot_prologue() + [
        f"store_at(base, dtype, row_start, step, i{k} + offset, row, {stack_var(depth - 1, k)})"
        for k in range(EPT)
    ]


def _const(depth: int) -> list[str]:
    return ["imm = bits_to_f32(arg)"] + [f"{stack_var(depth, k)} = imm" for k in range(EPT)]


def _by_position(depth: int, count: int, body) -> list[str]:
    """Branch on the DEPTH operand; ``body(n)`` handles position n below the top."""
    lines = []
    for n in range(count):
        lines.append(f"{'if' if n == 0 else 'elif'} arg == {n}:")
        lines += [_I + line for line in body(n)]
    return lines or ["pass"]


def _pick(depth: int) -> list[str]:
    def copy(n):
        return [f"{stack_var(depth, k)} = {stack_var(depth - 1 - n, k)}" for k in range(EPT)]

    return _by_position(depth, depth, copy)


def _poke(depth: int) -> list[str]:
    def overwrite(n):
        return [f"{stack_var(depth - 2 - n, k)} = {stack_var(depth - 1, k)}" for k in range(EPT)]

    return _by_position(depth, depth - 1, overwrite)


_SPECIAL_LOWERING = {"LOAD": _load, "STORE": _store, "CONST": _const, "PICK": _pick, "POKE": _poke}


def case_body(ins: isa.Instr, depth: int) -> list[str]:
    """The kernel statements for ``ins`` executed at stack ``depth``."""
    if ins.name in _SPECIAL_LOWERING:
        return _SPECIAL_LOWERING[ins.name](depth)
    return _moves(ins, depth)


def _dispatch() -> list[str]:
    lines = []
    for ins in isa.TABLE:
        if ins is isa.HALT:
            continue
        for depth in isa.specializations(ins):
            key = isa.dispatch_key(ins.opcode, depth)
            lines.append(f"{'if' if not lines else 'elif'} key == {key}:  # {ins.name} @{depth}")
            lines += [_I + line for line in case_body(ins, depth)]
    # HALT, and any key the verifier would never emit, ends the program.
    lines += ["else:", _I + "break"]
    return lines


def _prologue() -> list[str]:
    bases = ", ".join(f"base{s}" for s in range(MAX_SLOTS))
    header = abi.HEADER
    rec = abi.SLOT_RECORD
    return [
        f"def {abi.KERNEL_NAME}(code, table, {bases}):",
        f"{_I}sh_base = cuda.shared.array({MAX_SLOTS}, int64)",
        f"{_I}sh_dtype = cuda.shared.array({MAX_SLOTS}, int64)",
        f"{_I}sh_stride = cuda.shared.array({MAX_SLOTS * MAX_DIMS}, int64)",
        f"{_I}tid = cuda.threadIdx.x",
        f"{_I}if tid == 0:",
        *[f"{_I * 2}sh_base[{s}] = base{s}" for s in range(MAX_SLOTS)],
        f"{_I}if tid < {MAX_SLOTS}:",
        f"{_I * 2}sh_dtype[tid] = table[{header} + tid * {rec}]",
        f"{_I}if tid < {MAX_SLOTS * MAX_DIMS}:",
        f"{_I * 2}sh_stride[tid] = table[{header} + (tid // {MAX_DIMS}) * {rec} + 1 + tid % {MAX_DIMS}]",
        f"{_I}cuda.syncthreads()",
        *[f"{_I}d{d} = table[{d}]" for d in range(MAX_DIMS - 1)],
        f"{_I}row = table[{MAX_DIMS - 1}]",
        f"{_I}width = cuda.blockDim.x",
        f"{_I}tile_len = width * {EPT}",
        f"{_I}tiles_per_row = (row + tile_len - 1) // tile_len",
        f"{_I}n_tiles = {' * '.join(f'd{d}' for d in range(MAX_DIMS - 1))} * tiles_per_row",
        f"{_I}tile = int64(cuda.blockIdx.x)",
    ]


def _tile_loop() -> list[str]:
    outer = MAX_DIMS - 1
    lines = [
        "rest = tile // tiles_per_row",
        "i0 = (tile - rest * tiles_per_row) * tile_len + tid",
        *[f"i{k} = i{k - 1} + width" for k in range(1, EPT)],
    ]
    for d in reversed(range(outer)):
        if d == 0:
            lines.append("o0 = rest")
        else:
            lines += [f"o{d} = rest % d{d}", f"rest = rest // d{d}"]
    lines += [f"{stack_var(p, k)} = ZERO" for p in range(MAX_DEPTH) for k in range(EPT)]
    lines += ["pc = 0", "while True:"]
    loop = ["key = code[pc]", "arg = code[pc + 1]", "pc += 2", *_dispatch()]
    lines += [_I + line for line in loop]
    lines.append("tile += cuda.gridDim.x")
    return [f"{_I}while tile < n_tiles:"] + [_I * 2 + line for line in lines]


_HELPERS = '''

@device
def load_at(base, dtype, row_start, step, i, row):
    """Element i of the current row as float32; 0 outside the row."""
    if i < 0 or i >= row:
        return ZERO
    return load_element(base, dtype, row_start + i * step)


@device
def store_at(base, dtype, row_start, step, i, row, value):
    """Write element i of the current row; nothing outside the row."""
    if i >= 0 and i < row:
        store_element(base, dtype, row_start + i * step, value)
'''


@lru_cache(maxsize=1)
def kernel_source() -> str:
    """The whole interpreter module source, deterministic for a given ISA and ABI."""
    head = [
        '"""Generated by gint.kernel.codegen from gint.isa; do not edit."""',
        "from numba import cuda",
        "from numpy import float32, int64",
        "from gint.kernel.device import (device, load_element, store_element, truth, select,",
        "                                minimum, maximum, fma)",
        "from gint.kernel.memory import bits_to_f32",
        "",
        "ZERO = float32(0.0)",
    ]
    body = _prologue() + _tile_loop()
    return "\n".join(head) + _HELPERS + "\n\n" + "\n".join(body) + "\n"


def source_digest() -> str:
    """Changes whenever the generated kernel, or the device code it calls, changes."""
    from pathlib import Path

    digest = hashlib.sha256(kernel_source().encode())
    here = Path(__file__).parent
    for dependency in ("device.py", "memory.py"):
        digest.update((here / dependency).read_bytes())
    return digest.hexdigest()[:16]
