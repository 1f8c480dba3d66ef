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

Once per launch, each slot gets an access mode (in shared memory): a slot walked
contiguously along the row from vector-aligned row starts is read and written,
on every tile wholly inside its row, with one vector access per run and no bounds
checks. Everything else (row ends, broadcast, strided, misaligned, offsets) goes
element by element with checks. Nothing is decided per tile in shared memory, so
tiles need no barrier.

With ``prefetch``, threads 0..7 ask for each streamed slot's tile ``prefetch`` grid
strides ahead in L2. The next instruction is fetched before the current one
executes, so its load latency overlaps the work (the encoder pads programs so the
fetch past HALT stays in bounds). ``EPT``, ``VEC`` and ``prefetch`` come from a
``KernelConfig``; the dispatch is one dense ``if`` chain that LLVM's NVPTX back end
turns into jump tables (``gint.kernel.nvptx``).

A *row program* (a program with REDUCE or NEXTCHUNK; the header says so) runs with
each warp as its own 32-thread group walking whole rows: a row is the warp's tile
sequence, chunk 0, 1, ... (NEXTCHUNK loops back), so a row's reduction is a warp
reduction (shuffles; a shared-memory twin under the simulator) with no atomics, no
block barrier and no second launch.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache

from gint import abi, isa
from gint.abi import MAX_DIMS
from gint.isa import MAX_DEPTH, MAX_SLOTS, SLOT_BITS
from gint.kernel.config import DEFAULT, KernelConfig
from gint.kernel.rowcases import RowCases
from gint.kernel.source import INDENT, MATH_X, indent, stack_var, substitute

MAX_WARPS = 32  # per block (1024 threads)
_SLOT_MASK = (1 << SLOT_BITS) - 1


class Generator(RowCases):
    """Writes the kernel for one ``KernelConfig``."""

    def __init__(self, config: KernelConfig):
        self.config = config
        self.ept, self.vec, self.groups = config.ept, config.vec, config.groups

    # -- instruction cases -----------------------------------------------------

    def moves(self, ins: isa.Instr, depth: int) -> list[str]:
        """A pure instruction: read the popped entries, write the pushed ones."""
        first = depth - ins.pops
        lines = [f"{isa.IMMEDIATE} = bits_to_f32(arg)"] if ins.operand is isa.Operand.F32 else []
        for k in range(self.ept):
            reads = {name: f"t{j}" for j, name in enumerate(ins.inputs)}
            lines += [f"t{j} = {stack_var(first + j, k)}" for j in range(ins.pops)]
            for j, name in enumerate(ins.outputs):
                value = f"fresh({reads[name]})" if name in reads else substitute(ins.expr, reads)
                lines.append(f"{stack_var(first + j, k)} = {value}")
        return lines

    def slot_prologue(self) -> list[str]:
        return [
            f"slot = uint64(arg & {_SLOT_MASK})",  # unsigned: no negative-index wraparound code
            f"offset = arg >> {SLOT_BITS}",
            "mode = sh_vector[slot]",
            "base = sh_base[slot]",
            "if single_row:",
            INDENT + "row_start = int64(0)",
            "else:",
            INDENT + "row_start = sh_row_start[warp_records + slot]",
        ]

    def general_prologue(self) -> list[str]:
        return ["dtype = sh_dtype[slot]", f"step = sh_stride[slot * {MAX_DIMS} + {MAX_DIMS - 1}]"]

    def group(self, position: int, g: int) -> str:
        return ", ".join(stack_var(position, g * self.vec + v) for v in range(self.vec))

    def memory(self, direct_access, general_access) -> list[str]:
        """A LOAD or STORE: one vector access per run on a whole tile of a vector slot,
        element by element with checks otherwise (row ends, offsets, other layouts).
        ``direct_access()`` writes the whole tile's statements, ``general_access(g)``
        run ``g``'s statement."""
        direct = ["start = base + ((row_start + chunk_start) << element_shift(mode))", *self.direct_prologue()]
        direct += direct_access()
        general = self.general_prologue()
        for g in range(self.groups):
            general += [*self.run_prologue(g), general_access(g)]
        return self.slot_prologue() + ["if full and offset == 0 and mode >= 0:", *indent(direct), "else:", *indent(general)]

    def direct_prologue(self) -> list[str]:
        """More set-up of a whole tile's vector accesses (a hook for gint.kernel.tilecode)."""
        return []

    def run_prologue(self, g: int) -> list[str]:
        """Lines before run ``g``'s checked access (a hook for gint.kernel.tilecode)."""
        return []

    def tile_offset(self, g: int) -> str:
        """Run ``g``'s element offset from a whole tile's start."""
        return f"e{g}"

    def row_position(self, g: int) -> str:
        """Run ``g``'s row start, step, element index and row end in a checked access;
        ``limit`` is the row end a store may write up to."""
        return f"row_start, step, chunk_start + e{g} + offset"

    def row_end(self, g: int, limit: str) -> str:
        """Where run ``g``'s row ends for a checked access (``limit``: the row's end)."""
        return limit

    def load(self, depth: int) -> list[str]:
        return self.memory(
            lambda: [f"w{g} = load_tile_words(start, mode, {self.tile_offset(g)})" for g in range(self.groups)]
            + [f"{self.group(depth, g)} = widen_tile_group(mode, w{g})" for g in range(self.groups)],
            lambda g: f"{self.group(depth, g)} = load_group(base, dtype, {self.row_position(g)}, {self.row_end(g, 'row')})",
        )

    def store(self, depth: int) -> list[str]:
        # element i + offset gets the value of element i, for i inside the row: with a
        # negative offset, positions past the row's end (in its last tile) store nothing
        lines = self.memory(
            lambda: [f"store_tile_group(start, mode, {self.tile_offset(g)}, {self.group(depth - 1, g)})" for g in range(self.groups)],
            lambda g: f"store_group(base, dtype, {self.row_position(g)}, {self.row_end(g, 'limit')}, {self.group(depth - 1, g)})",
        )
        # after the general branch's prologue
        general = len(lines) - sum(1 + len(self.run_prologue(g)) for g in range(self.groups))
        return lines[:general] + [INDENT + "limit = row + offset if offset < 0 else row"] + lines[general:]

    def const(self, depth: int) -> list[str]:
        imm = isa.IMMEDIATE
        return [f"{imm} = bits_to_f32(arg)"] + [f"{stack_var(depth, k)} = fresh({imm})" for k in range(self.ept)]

    def by_position(self, count: int, body) -> list[str]:
        """Branch on the DEPTH operand; ``body(n)`` handles position n below the top."""
        lines = []
        for n in range(count):
            lines.append(f"{'if' if n == 0 else 'elif'} arg == {n}:")
            lines += indent(body(n))
        return lines or ["pass"]

    def pick(self, depth: int) -> list[str]:
        return self.by_position(depth, lambda n: self.copy(depth, depth - 1 - n))

    def poke(self, depth: int) -> list[str]:
        return self.by_position(depth - 1, lambda n: self.copy(depth - 2 - n, depth - 1))

    def copy(self, target: int, source: int) -> list[str]:
        """Stack position ``source`` to ``target``, element by element (nothing if the same)."""
        if target == source:
            return []
        return [f"{stack_var(target, k)} = fresh({stack_var(source, k)})" for k in range(self.ept)]

    def park(self, depth: int) -> list[str]:
        return self.copy(MATH_X, depth - 1) or ["pass"]

    def park2(self, depth: int) -> list[str]:
        # the top first: when depth == MATH_X + 1 it moves into the slot the other leaves
        return (self.copy(MATH_X, depth - 1) + self.copy(MATH_X - 1, depth - 2)) or ["pass"]

    def unpark(self, depth: int) -> list[str]:
        return self.copy(depth, MATH_X) or ["pass"]

    def math(self, depth: int) -> list[str]:
        """One case for every depth. A loop over the elements (LLVM does not unroll a
        body this big) keeps one copy of each function in the kernel, not ``ept``:
        element ``k`` is selected in and out of the math registers, so nothing leaves
        registers. The function code is uniform across a warp."""
        x, y = MATH_X, MATH_X - 1

        def pick(position: int, into: str) -> list[str]:
            return [f"{into} = {stack_var(position, 0)}"] + [
                f"{into} = {stack_var(position, k)} if k == {k} else {into}" for k in range(1, self.ept)
            ]

        body = pick(x, "t1") + pick(y, "t0")
        for n, fn in enumerate(isa.FUNCTIONS):
            names = {"x": "t0", "y": "t1"} if fn.arity == 2 else {"x": "t1"}
            body += [f"{'if' if n == 0 else 'elif'} arg == {fn.code}:  # {fn.name}", INDENT + f"t1 = {substitute(fn.expr, names)}"]
        body += [f"{stack_var(x, k)} = t1 if k == {k} else {stack_var(x, k)}" for k in range(self.ept)]
        return [f"for k in range({self.ept}):", *indent(body)]

    def case_body(self, ins: isa.Instr, depth: int) -> list[str]:
        """The kernel statements for ``ins`` executed at stack ``depth``."""
        special = {
            "LOAD": self.load,
            "STORE": self.store,
            "CONST": self.const,
            "PICK": self.pick,
            "POKE": self.poke,
            "PARK": self.park,
            "PARK2": self.park2,
            "UNPARK": self.unpark,
            "MATH": self.math,
            "ROWMASK": self.rowmask,
            "ROWLEN": self.rowlen,
            "REDUCE": self.reduce,
            "NEXTCHUNK": self.nextchunk,
        }
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
                lines += indent(self.case_body(ins, depth))
        # HALT, and any key the verifier would never emit, ends the program.
        return lines + ["else:", INDENT + "pc = -1", INDENT + "break"]

    # -- kernel skeleton -------------------------------------------------------

    def prologue(self) -> list[str]:
        bases = ", ".join(f"base{s}" for s in range(MAX_SLOTS))
        header, rec, dims = abi.HEADER, abi.SLOT_RECORD, MAX_DIMS
        strides = ", ".join(f"sh_stride[tid * {dims} + {d}]" for d in range(dims))
        body = [
            f"sh_base = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_dtype = cuda.shared.array({MAX_SLOTS}, int64)",
            f"sh_stride = cuda.shared.array({MAX_SLOTS * dims}, int64)",
            f"sh_vector = cuda.shared.array({MAX_SLOTS}, int32)",
            # per warp and slot: where the slot's current row starts (domains of several rows)
            f"sh_row_start = cuda.shared.array({MAX_WARPS * MAX_SLOTS}, int64)",
            *self.more_shared_arrays(),
            # the simulator's stand-in for warp shuffles (unused on the GPU)
            f"sh_exchange = cuda.shared.array({MAX_WARPS * 32}, float32)",
            "tid = cuda.threadIdx.x",
            "lane = tid % 32",
            f"warp_records = uint64(tid // 32 * {MAX_SLOTS})",
            "if tid == 0:",
            *indent([f"sh_base[{s}] = base{s}" for s in range(MAX_SLOTS)]),
            f"if tid < {MAX_SLOTS}:",
            INDENT + f"sh_dtype[tid] = table[{header} + tid * {rec}]",
            f"if tid < {MAX_SLOTS * dims}:",
            INDENT + f"sh_stride[tid] = table[{header} + (tid // {dims}) * {rec} + 1 + tid % {dims}]",
            "cuda.syncthreads()",
            *self.vector_modes(strides),
            f"row = table[{dims - 1}]",
            f"stream_mask = code[{abi.CODE_STREAM_MASK}]",
            f"row_program = code[{abi.CODE_ROW_PROGRAM}] != 0",
            # a row program's thread group is the warp (a "tile" is then a whole row); else the block
            "if row_program:",
            *indent([
                "width = 32",
                "first = lane",
                "tile = int32(cuda.blockIdx.x * (cuda.blockDim.x // 32) + tid // 32)",
                "tile_step = int32(cuda.gridDim.x * (cuda.blockDim.x // 32))",
            ]),
            "else:",
            *indent(["width = cuda.blockDim.x", "first = tid", "tile = int32(cuda.blockIdx.x)", "tile_step = int32(cuda.gridDim.x)"]),
            self.tile_len(),
            *self.tile_counts(strides),
            "single_row = rows == 1 and not row_program",
            # element offsets, within a tile, of this thread's vector runs
            f"e0 = int32(first * {self.vec})",
            *[f"e{g} = {self.run_start(g)}" for g in range(1, self.groups)],
            # stack registers are defined once; the verifier proves no program reads one before writing it
            *[f"{stack_var(p, k)} = fresh(ZERO)" for p in range(MAX_DEPTH) for k in range(self.ept)],
        ]
        return [f"def {abi.KERNEL_NAME}(code, table, {bases}):"] + indent(body)

    def more_shared_arrays(self) -> list[str]:
        return []

    def tile_len(self) -> str:
        return f"tile_len = width * {self.ept}"

    def vector_modes(self, strides: str) -> list[str]:
        """Once per launch, per slot: may whole tiles move with one vector access per run?"""
        return [
            f"if tid < {MAX_SLOTS}:",
            INDENT + f"sh_vector[tid] = vector_mode(sh_dtype[tid], sh_base[tid], {strides})",
            "cuda.syncthreads()",
        ]

    def tile_counts(self, strides: str) -> list[str]:
        """``rows``, the tiles of a row and of the domain, and ``grid_len``."""
        return [
            "grid_len = tile_step * tile_len",
            # tile counters are 32-bit (2^31 tiles of 2048+ elements is beyond any GPU's memory)
            "tiles_per_row = int32(1) if row_program else int32((row + tile_len - 1) // tile_len)",
            f"rows = {' * '.join(f'table[{d}]' for d in range(MAX_DIMS - 1))}",
            "n_tiles = int32(rows * tiles_per_row)",
        ]

    def run_start(self, g: int) -> str:
        return f"e0 + {g * self.vec} * width"

    def prefetch(self) -> list[str]:
        """Threads 0..MAX_SLOTS-1 ask for their streamed slot's tile ``prefetch`` grid
        strides ahead in L2 (a hint: nothing waits for it)."""
        if not self.config.prefetch:
            return []
        ahead = f"chunk_start + {self.config.prefetch} * grid_len"
        condition = f"single_row and tid < {MAX_SLOTS} and (stream_mask >> tid) & 1"
        step_one = f"sh_stride[tid * {MAX_DIMS} + {MAX_DIMS - 1}] == 1"
        return [
            f"if {condition} and {step_one}:",
            INDENT + f"prefetch_row_l2(sh_base[tid], sh_dtype[tid], int64(0), {ahead}, tile_len, row)",
        ]

    def row_starts(self) -> list[str]:
        """Several rows: split the tile number into row coordinates o0..o2 and the chunk
        of the row; lanes 0..MAX_SLOTS-1 of each warp write where each slot's row starts
        to the warp's records (read by LOAD/STORE: no registers held across the program)."""
        outer = MAX_DIMS - 1
        lines = [*self.tiles_per_row(), "rest = tile // tiles_per_row", "chunk = int32(tile - rest * tiles_per_row)"]
        lines += self.outer_coordinates()
        row_start = " + ".join(f"o{d} * sh_stride[lane * {MAX_DIMS} + {d}]" for d in range(outer))
        return lines + [
            "warp_sync()",  # the warp's lanes are done reading the last tile's records
            f"if lane < {MAX_SLOTS}:",
            INDENT + f"sh_row_start[warp_records + lane] = {row_start}",
            *self.more_row_records(),
            "warp_sync()",
        ]

    def tiles_per_row(self) -> list[str]:
        return []

    def outer_coordinates(self) -> list[str]:
        """``rest`` (the row's number) split into coordinates o0..o2 of the dims outside it."""
        lines = []
        for d in reversed(range(MAX_DIMS - 1)):
            # sizes re-read from the table here, not held in registers for the whole kernel
            lines += ["o0 = rest"] if d == 0 else [f"o{d} = rest % table[{d}]", f"rest = rest // table[{d}]"]
        return lines

    def more_row_records(self) -> list[str]:
        return []

    def whole_tile(self) -> str:
        """Whether the tile's every element is in the domain (no checks needed)."""
        return "chunk_start + tile_len <= row"

    def tiles_left(self) -> str:
        return "tile < n_tiles"

    def tile_loop(self) -> list[str]:
        lines = ["if single_row:", INDENT + "chunk = int32(tile)", "else:", *indent(self.row_starts())]
        # the chunk loop: a tile runs once; a row program's NEXTCHUNK comes back here
        chunk = [
            "chunk_start = int64(chunk) * tile_len",
            f"full = {self.whole_tile()}",
            *self.prefetch(),
            "key = code[pc]",
            "arg = code[pc + 1]",
            "pc += 2",
            "while True:",
        ]
        loop = ["next_key = code[pc]", "next_arg = code[pc + 1]", "pc += 2", *self.dispatch()]
        chunk += indent(loop + ["key = next_key", "arg = next_arg"])
        lines += [f"pc = {abi.CODE_HEADER}", "while pc >= 0:", *indent(chunk)]
        lines.append("tile = int32(tile + tile_step)")
        return indent([f"while {self.tiles_left()}:"] + indent(lines))

    def source(self) -> str:
        memory = ["load_group", "store_group", "load_tile_words", "widen_tile_group", "store_tile_group", "vector_mode", "element_shift"]
        helpers = ", ".join([*memory, "prefetch_row_l2", *expression_helpers()])
        head = [
            f'"""Generated by gint.kernel.codegen from gint.isa for {self.config}; do not edit."""',
            "from numba import cuda",
            "from numpy import float32, int32, int64, uint64",
            f"from gint.kernel.device import {helpers}",
            "from gint.kernel.memory import bits_to_f32, fresh, shuffle_xor, warp_sync",
            *self.more_imports(),
            "",
            "ZERO = float32(0.0)",
        ]
        return "\n".join(head) + "\n\n\n" + "\n".join(self.prologue() + self.tile_loop()) + "\n"


    def more_imports(self) -> list[str]:
        return []


def _called_names(expression: str, operands) -> set[str]:
    tree = ast.parse(expression, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(operands) - {isa.IMMEDIATE}


def expression_helpers() -> list[str]:
    """Device functions that instruction and math-function expressions call (they
    live in gint.kernel.device)."""
    names: set[str] = set()
    for ins in isa.TABLE:
        if ins.expr is not None:
            names |= _called_names(ins.expr, ins.inputs)
    for fn in isa.FUNCTIONS:
        names |= _called_names(fn.expr, isa.MATH_ARGS)
    return sorted(names)


@lru_cache(maxsize=None)
def kernel_source(config: KernelConfig = DEFAULT) -> str:
    """The whole interpreter module source, deterministic for a given ISA, ABI and config."""
    if config.multi_row_tiles:
        from gint.kernel.tilecode import TiledGenerator

        return TiledGenerator(config).source()
    return Generator(config).source()


def source_digest(config: KernelConfig = DEFAULT) -> str:
    """Changes whenever the generated kernel, the device code it calls, or the code that
    turns it into PTX changes (the instruction table is in the generated source)."""
    from pathlib import Path

    digest = hashlib.sha256(kernel_source(config).encode())
    here = Path(__file__).parent
    tiles = ("tiles.py", "tilemem.py") if config.multi_row_tiles else ()
    for dependency in ("device.py", "memory.py", "mathfn.py", "nvptx.py", "switches.py", "ptx_dispatch.py", *tiles):
        digest.update((here / dependency).read_bytes())
    return digest.hexdigest()[:16]
