"""Random programs, their mutations, and tensors laid out with canaries around them.

``random_case(seed)`` makes one fuzz case: a program (mostly valid: built by a
generator that tracks the stack depth, the math registers and the loop structure,
then, for a share of cases, mutated so that the verifier has something to reject)
and a description of its tensors (shapes, dtypes, layouts). ``Arena`` allocates the
tensors inside larger buffers filled with random canary values, so that a write
anywhere outside a tensor's elements is seen afterwards.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from gint import abi, isa

_CONSTANTS = (0.0, -0.0, 1.0, -1.5, 0.5, 3.0, 1e-3, 1e30, -1e30, math.inf, -math.inf, math.nan, 2.0**24 + 1, 7.0)
_OFFSETS = (0, 0, 0, 0, 1, -1, 2, -3, 100, -100, 255, -257)
_COMPUTED = [ins for ins in isa.TABLE if ins.expr is not None]
_MOVES = [isa.BY_NAME[n] for n in ("DUP", "POP", "SWAP", "OVER", "ROT")]
# math functions whose results are exact (a rounding), so their programs compare exactly
_EXACT_FUNCTIONS = frozenset({"to_bf16", "to_f16"})
# what libdevice and torch may round apart: MATH, and the math functions with rows of their own
_INEXACT = (
    frozenset({"FLOORDIV"})
    | {ins.name for ins in isa.TABLE if ins.operand is isa.Operand.FUNC}
    | {name for function, name in isa.DIRECT_FUNCTIONS.items() if function not in ("to_bf16", "to_f16")}
)


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: torch.dtype
    layout: str  # "contiguous", "transposed", "strided" (every other element), "broadcast"
    stored: bool


@dataclass(frozen=True)
class Case:
    seed: int
    code: tuple[tuple[int, int], ...]
    tensors: tuple[TensorSpec, ...]
    mutated: bool

    @property
    def exact(self) -> bool:
        """Whether every result is exact in float32, so the kernel must match bit for bit
        (sums and products reduced by REDUCE are: the reference folds in the kernel's order)."""
        for opcode, operand in self.code:
            ins = isa.BY_OPCODE.get(opcode)
            if ins is None:
                continue
            if ins.name == "MATH":
                function = isa.FUNCTION_BY_CODE.get(operand)
                if function is None or function.name not in _EXACT_FUNCTIONS:
                    return False
            elif ins.name in _INEXACT:
                return False
        return True


class _Builder:
    """Emits instructions that keep the program valid: depth within the stack, the math
    registers used as the verifier's ``math`` rule says, stores at one offset per slot."""

    def __init__(self, rng: random.Random, inputs: list[int], outputs: list[int], row: bool):
        self.rng, self.inputs, self.outputs, self.row = rng, inputs, outputs, row
        self.code: list[tuple[int, int]] = []
        self.depth = 0
        self.store_offsets = {slot: rng.choice(_OFFSETS) for slot in outputs}
        self.in_place = set()  # outputs also loaded: everything at offset 0 (the aliasing rule)

    def emit(self, name: str, operand: int = 0) -> None:
        ins = isa.BY_NAME[name]
        self.code.append((ins.opcode, operand))
        self.depth += ins.pushes - ins.pops

    def push_value(self) -> None:
        rng = self.rng
        choice = rng.random()
        if choice < 0.55:
            slot = rng.choice(self.inputs + self.outputs) if rng.random() < 0.1 else rng.choice(self.inputs)
            if slot in self.outputs:
                self.in_place.add(slot)
                self.store_offsets[slot] = 0
                offset = 0
            else:
                offset = rng.choice(_OFFSETS)
            self.emit("LOAD", isa.encode_slot(slot, offset))
        elif choice < 0.8 or self.depth == 0:
            self.emit("CONST", isa.f32_bits(rng.choice(_CONSTANTS)))
        elif self.row and choice < 0.9:
            self.emit("ROWLEN")
        else:
            self.emit("PICK", rng.randrange(self.depth))

    def step(self) -> None:
        """One random instruction (or a PARK ... UNPARK group) valid at the current depth."""
        rng = self.rng
        options = []
        if self.depth < isa.MAX_DEPTH:
            options += ["push"] * 4
        if self.depth >= 1:
            options += ["compute"] * 5 + ["math", "store"] * 1 + ["move"]
            if self.row:
                options.append("rowmask")
        if self.depth >= 2:
            options += ["poke"]
        kind = rng.choice(options)
        if kind == "push":
            self.push_value()
        elif kind == "compute":
            fits = [ins for ins in _COMPUTED if ins.pops <= self.depth and self.depth - ins.pops + 1 <= isa.MAX_DEPTH]
            ins = rng.choice(fits)
            operand = isa.f32_bits(rng.choice(_CONSTANTS)) if ins.operand is isa.Operand.F32 else 0
            self.emit(ins.name, operand)
        elif kind == "move":
            fits = [m for m in _MOVES if isa.runs_at(m, self.depth)]
            self.emit(rng.choice(fits).name)
        elif kind == "poke":
            self.emit("POKE", rng.randrange(self.depth - 1))
        elif kind == "rowmask":
            self.emit("ROWMASK", isa.f32_bits(rng.choice(_CONSTANTS)))
        elif kind == "math":
            two = self.depth >= 2 and rng.random() < 0.3
            functions = [f for f in isa.FUNCTIONS if f.arity == (2 if two else 1)]
            self.emit("PARK2" if two else "PARK")
            self.code.append((isa.BY_NAME["MATH"].opcode, rng.choice(functions).code))
            if self.row and not two and rng.random() < 0.3:
                self.code.append((isa.BY_NAME["REDUCE"].opcode, rng.choice(isa.REDUCTIONS).code))
            self.emit("UNPARK")
        elif kind == "store":
            slot = rng.choice(self.outputs)
            self.emit("STORE", isa.encode_slot(slot, self.store_offsets[slot]))

    def settle(self, depth: int) -> None:
        """Pop or push until the stack holds ``depth`` entries."""
        while self.depth > depth:
            self.emit("POP")
        while self.depth < depth:
            self.emit("CONST", isa.f32_bits(self.rng.choice(_CONSTANTS)))

    def block(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def _build(rng: random.Random, inputs: list[int], outputs: list[int], row: bool) -> list[tuple[int, int]]:
    b = _Builder(rng, inputs, outputs, row)
    if not row:
        b.block(rng.randint(1, 14))
        if b.depth == 0:
            b.push_value()
        b.emit("STORE", isa.encode_slot(outputs[0], b.store_offsets[outputs[0]]))
        b.block(rng.randint(0, 6))
        b.emit("HALT")
        return b.code
    # a row program: accumulate, reduce, use the result in a second loop (each loop's depth balanced)
    reduction = rng.choice(isa.REDUCTIONS)
    b.emit("CONST", isa.f32_bits(reduction.identity))
    start = len(b.code)
    b.push_value()
    b.block(rng.randint(0, 5))
    b.settle(2)
    b.emit("ROWMASK", isa.f32_bits(reduction.identity))
    b.emit(reduction.combine)
    b.emit("NEXTCHUNK", start)
    b.emit("PARK")
    b.code.append((isa.BY_NAME["REDUCE"].opcode, reduction.code))
    b.emit("UNPARK")
    if len(outputs) > 1 and rng.random() < 0.8:  # the row's result, once per row, to the per-row output
        b.emit("DUP")
        b.emit("STORE", isa.encode_slot(outputs[-1], b.store_offsets[outputs[-1]]))
    base = b.depth
    start = len(b.code)
    b.block(rng.randint(1, 8))
    if b.depth <= base:
        b.push_value()
    b.emit("STORE", isa.encode_slot(outputs[0], b.store_offsets[outputs[0]]))
    b.settle(base)
    if rng.random() < 0.85:
        b.emit("NEXTCHUNK", start)
    b.emit("HALT")
    return b.code


def mutate(rng: random.Random, code: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One to three random edits: an opcode, an operand, a deletion, a duplication, a swap."""
    code = list(code)
    for _ in range(rng.randint(1, 3)):
        if not code:
            break
        i = rng.randrange(len(code))
        op, arg = code[i]
        edit = rng.randrange(6)
        if edit == 0:
            code[i] = (rng.choice([rng.randrange(len(isa.TABLE) + 3), rng.randrange(256)]), arg)
        elif edit == 1:
            code[i] = (op, rng.choice([arg + 1, arg - 1, -arg, rng.randrange(-(1 << 31), 1 << 31), rng.randrange(16)]))
        elif edit == 2:
            del code[i]
        elif edit == 3:
            code.insert(i, code[i])
        elif edit == 4 and i + 1 < len(code):
            code[i], code[i + 1] = code[i + 1], code[i]
        else:
            code[i] = (isa.BY_NAME["NEXTCHUNK"].opcode, rng.randrange(len(code) + 2))
    return code


DTYPES = tuple(abi.DTYPE_CODE)


def random_case(seed: int, *, gpu: bool = False) -> Case:
    """One fuzz case; ``gpu`` allows larger tensors (the simulator runs every thread in Python)."""
    rng = random.Random(seed)
    n_inputs, n_outputs = rng.randint(1, 3), rng.randint(1, 2)
    inputs, outputs = list(range(n_inputs)), list(range(n_inputs, n_inputs + n_outputs))
    row = rng.random() < 0.4
    code = _build(rng, inputs, outputs, row)
    mutated = rng.random() < 0.3
    if mutated:
        code = mutate(rng, code)
    rows = rng.choice((1, 2, 3, 5) if not gpu else (1, 3, 17, 130))
    n = rng.choice((1, 7, 70, 257, 300, 520) if not gpu else (1, 70, 257, 2048, 2051, 4099, 9000))
    specs = []
    exact = Case(seed, tuple(code), (), mutated).exact
    for slot in range(n_inputs + n_outputs):
        stored = slot in outputs
        dtype = rng.choice(DTYPES)
        if stored and not exact:
            dtype = rng.choice((torch.float32, torch.float16, torch.bfloat16))
        if stored:
            per_row = row and slot == outputs[-1] and n_outputs > 1
            shape = (rows, 1) if per_row else (rows, n)
            layout = rng.choice(("contiguous", "contiguous", "transposed", "strided"))
        else:
            layout = rng.choice(("contiguous", "contiguous", "transposed", "strided", "broadcast"))
            shape = (rows, n)
            if layout == "broadcast":
                shape = rng.choice([(n,), (rows, 1), ()])
        specs.append(TensorSpec(shape, dtype, layout, stored))
    return Case(seed, tuple(code), tuple(specs), mutated)


def random_values(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """Random values of ``dtype``: normal floats with specials mixed in, integers up to 2**40."""
    numel = math.prod(shape)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if not dtype.is_floating_point:
        high = 1 << 40 if dtype == torch.int64 else 1 << 30
        return torch.randint(-high, high, shape, generator=generator, dtype=torch.int64).to(dtype)
    values = torch.randn(shape, generator=generator) * 4
    flat = values.view(-1)
    if numel > 4:
        specials = torch.tensor([0.0, -0.0, math.inf, math.nan, 1e38, -3.0])
        picks = torch.randint(0, numel, (max(1, numel // 16),), generator=generator)
        flat[picks] = specials[torch.randint(0, len(specials), picks.shape, generator=generator)]
    return values.to(dtype)


class Arena:
    """Tensors carved out of larger buffers whose other elements are random canaries."""

    PAD = 64  # canary elements on each side of a tensor

    def __init__(self, specs, device: torch.device, generator: torch.Generator):
        self.buffers: list[torch.Tensor] = []
        self.tensors: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []  # per buffer: which elements belong to the tensor
        for spec in specs:
            strides, extent = self._strides(spec)
            buffer = random_values((extent + 2 * self.PAD,), spec.dtype, generator).to(device)
            tensor = buffer.as_strided(spec.shape, strides, self.PAD)
            tensor.copy_(random_values(spec.shape, spec.dtype, generator).to(device))
            mask = torch.zeros(buffer.numel(), dtype=torch.bool, device=device)
            mask.as_strided(spec.shape, strides, self.PAD).fill_(True)
            self.buffers.append(buffer)
            self.tensors.append(tensor)
            self.masks.append(mask)
        self.before = [b.clone() for b in self.buffers]

    @staticmethod
    def _strides(spec: TensorSpec) -> tuple[tuple[int, ...], int]:
        shape = spec.shape
        if not shape:
            return (), 1
        dense = [1] * len(shape)
        for d in range(len(shape) - 2, -1, -1):
            dense[d] = dense[d + 1] * max(shape[d + 1], 1)
        if spec.layout == "transposed" and len(shape) == 2:
            dense = [1, max(shape[0], 1)]
        elif spec.layout == "strided":
            dense = [2 * s for s in dense]
        extent = 1 + sum((size - 1) * stride for size, stride in zip(shape, dense) if size > 0)
        return tuple(dense), extent

    def spans(self) -> list[tuple[int, int]]:
        """The byte range of each tensor's elements (first to last, gaps included)."""
        spans = []
        for t in self.tensors:
            extent = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) if t.numel() else 0
            spans.append((t.data_ptr(), t.data_ptr() + extent * t.element_size()))
        return spans

    def canaries_intact(self) -> list[int]:
        """Slots whose buffer changed outside the tensor's own elements."""
        damaged = []
        for slot, (before, after, mask) in enumerate(zip(self.before, self.buffers, self.masks)):
            if not _same_bits(before[~mask], after[~mask]):
                damaged.append(slot)
        return damaged


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype == torch.bool:
        return torch.equal(a, b)
    ints = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.view(ints), b.view(ints))
