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

Per tile and slot, a few threads decide once how the slot's elements are reached
(an "access mode", kept in shared memory): a tile wholly inside the row, walked
contiguously from a vector-aligned address, is read and written with one vector
access per run and no bounds checks; anything else (row ends, broadcast, strided,
misaligned, offsets) goes element by element with checks.

Streamed slots (loaded, only at offset 0, never stored) are fetched ahead: with
``stages`` S, each thread starts ``cp.async`` copies of its own runs of tile k+S-1
into shared memory before running the program over tile k, so device-memory
latency overlaps the interpretation of S-1 tiles, whatever the program does between
its loads. A LOAD of such a slot reads shared memory. With ``prefetch``, the slots'
tiles ``prefetch`` grid strides ahead are also requested into L2.

The next instruction is fetched before the current one executes, so its load
latency overlaps the work (the encoder pads programs so the fetch past HALT stays
in bounds). ``EPT``, ``VEC``, ``stages`` and ``prefetch`` come from a ``KernelConfig``.
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
STAGED = 8  # access modes at or above this read a staged copy in shared memory (mode - STAGED is the dtype)
STAGE_ELEMENT_BYTES = 4  # staging room per element: the widest dtype that streams (float32, int32)
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
        return [
            f"slot = arg & {_SLOT_MASK}",
            f"offset = arg >> {SLOT_BITS}",
            "here = uint64(parity + slot)",  # unsigned: no negative-index wraparound code
            "mode = sh_mode[here]",
        ]

    def general_prologue(self) -> list[str]:
        return [
            "base = sh_base[slot]",
            "dtype = sh_dtype[slot]",
            f"step = sh_stride[slot * {MAX_DIMS} + {MAX_DIMS - 1}]",
            "row_start = sh_row_start[here]",
        ]

    def group(self, position: int, g: int) -> str:
        return ", ".join(stack_var(position, g * self.vec + v) for v in range(self.vec))

    def load(self, depth: int) -> list[str]:
        direct = ["start = sh_tile_start[here]"] + [
            f"{self.group(depth, g)} = load_tile_group(start, mode, e{g})" for g in range(self.groups)
        ]
        general = self.general_prologue() + [
            f"{self.group(depth, g)} = load_group(base, dtype, row_start, step, j{g} + offset, row)"
            for g in range(self.groups)
        ]
        lines = self.slot_prologue()
        if self.config.stages:
            staged = ["start = sh_stage_start[here]"] + [
                f"{self.group(depth, g)} = load_staged_group(start, mode - {STAGED}, e{g})" for g in range(self.groups)
            ]
            lines += [f"if mode >= {STAGED}:", *_indent(staged), "elif offset == 0 and mode >= 0:"]
        else:
            lines += ["if offset == 0 and mode >= 0:"]
        return lines + [*_indent(direct), "else:", *_indent(general)]

    def store(self, depth: int) -> list[str]:
        # streamed slots are never stored, so a stored slot's mode is never STAGED or above
        direct = ["start = sh_tile_start[here]"] + [
            f"store_tile_group(start, mode, e{g}, {self.group(depth - 1, g)})" for g in range(self.groups)
        ]
        general = self.general_prologue() + [
            f"store_group(base, dtype, row_start, step, j{g} + offset, row, {self.group(depth - 1, g)})"
            for g in range(self.groups)
        ]
        return self.slot_prologue() + ["if offset == 0 and mode >= 0:", *_indent(direct), "else:", *_indent(general)]

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

    # -- kernel skeleton -------------------------------------------------------
    #
    # Tiles of a block are numbered k = 0, 1, ... (tile = blockIdx + k * gridDim). At
    # step k, threads 0..MAX_SLOTS-1 describe tile k + AHEAD in shared memory (one
    # record per slot: row start, tile address, access mode, staging address); after
    # the barrier, with staging, every thread starts copying its own bytes of that
    # tile's streamed slots into shared memory (stage (k + AHEAD) % STAGES), then waits
    # for its copies of tile k and runs the program over tile k. Descriptions live in
    # a ring of AHEAD + 2 records, so a new one never overwrites one still being read.

    @property
    def ahead(self) -> int:
        return max(self.config.stages - 1, 0)

    @property
    def ring(self) -> int:
        return self.ahead + 2

    def prologue(self) -> list[str]:
        bases = ", ".join(f"base{s}" for s in range(MAX_SLOTS))
        header, rec, dims = abi.HEADER, abi.SLOT_RECORD, MAX_DIMS
        outer = " * ".join(f"d{d}" for d in range(dims - 1))
        records = self.ring * MAX_SLOTS
        body = [
            f"sh_base = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_dtype = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_stride = cuda.shared.array({MAX_SLOTS * dims}, int64)",
            f"sh_row_start = cuda.shared.array({records}, int64)",
            f"sh_tile_start = cuda.shared.array({records}, int64)",
            f"sh_stage_start = cuda.shared.array({records}, int64)",
            f"sh_mode = cuda.shared.array({records}, int32)",
            f"sh_chunk_start = cuda.shared.array({self.ring}, int64)",
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
            f"stream_mask = code[{abi.CODE_STREAM_MASK}]",
            f"n_streamed = code[{abi.CODE_STREAM_COUNT}]",
            "stage_buffer = cuda.shared.array(0, uint8)",
            "stage_base = shared_address(stage_buffer)",
            "width = cuda.blockDim.x",
            f"tile_len = width * {self.ept}",
            f"stage_bytes = tile_len * {STAGE_ELEMENT_BYTES}",
            # stage only into shared memory the launch provided: a short launch reads device memory instead
            f"staging = {self.config.stages} * n_streamed * stage_bytes <= stage_buffer.size",
            "grid = cuda.gridDim.x",
            "grid_len = grid * tile_len",
            "tiles_per_row = (row + tile_len - 1) // tile_len",
            f"n_tiles = {outer} * tiles_per_row",
            f"single_row = {outer} == 1",
            "tile = int64(cuda.blockIdx.x)",
            "k = 0",
            # element offsets, within a tile, of this thread's vector runs
            f"e0 = tid * {self.vec}",
            *[f"e{g} = e0 + {g * self.vec} * width" for g in range(1, self.groups)],
            # stack registers are defined once; the verifier proves no program reads one before writing it
            *[f"{stack_var(p, k)} = fresh(ZERO)" for p in range(MAX_DEPTH) for k in range(self.ept)],
        ]
        for a in range(self.ahead):
            body += self.describe(f"tile + {a} * grid", f"{a * MAX_SLOTS}", f"{a}")
            body += self.stage(f"{a * MAX_SLOTS}")
        return [f"def {abi.KERNEL_NAME}(code, table, {bases}):"] + _indent(body)

    def describe(self, tile: str, ring: str, stage: str) -> list[str]:
        """Threads 0..MAX_SLOTS-1 describe slot ``tid`` in tile ``tile`` into ring
        record ``ring + tid`` (and thread 0 the tile's first row element), then the
        block synchronizes."""
        dims = MAX_DIMS
        outer = MAX_DIMS - 1
        split = ["rest = ahead_tile // tiles_per_row", "chunk = ahead_tile - rest * tiles_per_row"]
        for d in reversed(range(outer)):
            split += ["o0 = rest"] if d == 0 else [f"o{d} = rest % d{d}", f"rest = rest // d{d}"]
        row_start = " + ".join(f"o{d} * sh_stride[tid * {dims} + {d}]" for d in range(outer))
        lines = [
            "if single_row:",
            _I + "chunk = ahead_tile",
            *_indent([f"o{d} = int64(0)" for d in range(outer)]),
            "else:",
            *_indent(split),
            "chunk_start = chunk * tile_len",
            f"step = sh_stride[tid * {dims} + {dims - 1}]",
            "dtype = sh_dtype[tid]",
            f"row_start = {row_start}",
            "start = sh_base[tid] + (row_start + chunk_start * step) * element_size(dtype)",
            "mode = tile_mode(dtype, start, step, chunk_start + tile_len <= row)",
            "streamed = (stream_mask >> tid) & 1",
        ]
        if self.config.stages:
            lines += [
                "if mode >= 0 and streamed and staging:",
                _I + f"mode += {STAGED}",
                f"sh_stage_start[at] = stage_base + (({stage}) * n_streamed + code[{abi.CODE_STREAM_RANK} + tid]) * stage_bytes",
            ]
        lines += [
            "sh_row_start[at] = row_start",
            "sh_tile_start[at] = start",
            "sh_mode[at] = mode",
            "if tid == 0:",
            _I + f"sh_chunk_start[({ring}) // {MAX_SLOTS}] = chunk_start",
        ]
        if self.config.prefetch:
            ahead = f"chunk_start + {self.config.prefetch} * grid_len"
            lines += [
                "if single_row and step == 1 and streamed:",
                _I + f"prefetch_row_l2(sh_base[tid], dtype, row_start, {ahead}, tile_len, row)",
            ]
        return [
            f"if tid < {MAX_SLOTS}:",
            _I + f"ahead_tile = {tile}",
            _I + f"at = uint64({ring} + tid)",
            _I + "if ahead_tile < n_tiles:",
            *_indent(lines, 2),
            _I + "else:",
            _I * 2 + "sh_mode[at] = -1",
            "cuda.syncthreads()",
        ]

    def stage(self, ring: str) -> list[str]:
        """Every thread starts copying its runs of the streamed slots described in
        ring records ``ring ..``, as one commit group (empty when nothing is streamed)."""
        if not self.config.stages:
            return []
        copies = [f"stage_group(dst + e{g} * size, src + e{g} * size, dtype)" for g in range(self.groups)]
        return [
            f"for s in range({MAX_SLOTS}):",
            _I + f"mode = sh_mode[uint64({ring} + s)]",
            _I + f"if mode >= {STAGED}:",
            _I * 2 + f"dtype = mode - {STAGED}",
            _I * 2 + "size = element_size(dtype)",
            _I * 2 + f"src = sh_tile_start[uint64({ring} + s)]",
            _I * 2 + f"dst = sh_stage_start[uint64({ring} + s)]",
            *_indent(copies, 2),
            "copy_async_commit()",
        ]

    def tile_loop(self) -> list[str]:
        ahead, ring = self.ahead, self.ring
        current = f"(k % {ring}) * {MAX_SLOTS}"
        upcoming = f"((k + {ahead}) % {ring}) * {MAX_SLOTS}"
        lines = self.describe(f"tile + {ahead} * grid", upcoming, f"(k + {ahead}) % {self.config.stages or 1}")
        lines += self.stage(upcoming)
        if self.config.stages:
            lines.append(f"copy_async_wait_{ahead}()")
        lines += [
            f"parity = {current}",
            f"chunk_start = sh_chunk_start[k % {ring}]",
            "j0 = chunk_start + e0",
            *[f"j{g} = chunk_start + e{g}" for g in range(1, self.groups)],
            f"key = code[{abi.CODE_HEADER}]",
            f"arg = code[{abi.CODE_HEADER + 1}]",
            f"pc = {abi.CODE_HEADER + 2}",
            "while True:",
        ]
        loop = ["next_key = code[pc]", "next_arg = code[pc + 1]", "pc += 2", *self.dispatch()]
        lines += _indent(loop + ["key = next_key", "arg = next_arg"])
        lines += ["tile += grid", "k += 1"]
        return _indent(["while tile < n_tiles:"] + _indent(lines))

    def source(self) -> str:
        memory = ["load_group", "store_group", "load_tile_group", "store_tile_group", "load_staged_group"]
        helpers = ", ".join([*memory, "stage_group", "tile_mode", "element_size", "prefetch_row_l2"])
        helpers += ", " + ", ".join(expression_helpers())
        head = [
            f'"""Generated by gint.kernel.codegen from gint.isa for {self.config}; do not edit."""',
            "from numba import cuda",
            "from numba.types import uint8  # a Numba type: the simulator sizes dynamic shared memory from it",
            "from numpy import float32, int32, int64, uint64",
            f"from gint.kernel.device import {helpers}",
            "from gint.kernel.memory import bits_to_f32, fresh, shared_address, copy_async_commit",
            f"from gint.kernel.memory import copy_async_wait_{self.ahead}" if self.config.stages else "",
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
