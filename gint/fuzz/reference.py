"""An independent model of the gint machine in eager PyTorch: the oracle of the tests
and of the bytecode fuzzer.

It executes a ``Program`` one instruction at a time over whole tensors (float32
values), from the meanings in the instruction table, not from the kernel's code
generator, and it models what the kernel's results depend on:

- a row program walks each row in chunks of ``ROW_CHUNK`` elements (one warp of 32
  lanes, ``EPT`` elements each); code outside a NEXTCHUNK loop runs on the row's first
  chunk only, ROWMASK replaces the elements past the row's end, and REDUCE folds a
  warp's chunk in the kernel's own order (each lane's elements in turn, then a
  butterfly across lanes), so sums are bit for bit the kernel's;
- a STORE writes element ``i + offset`` for each element ``i`` of the row (none past
  either end), and a slot that does not move along the row (a per-row result) only
  at element 0;
- loads give 0 outside the row; stores round to the slot's dtype as the kernel does
  (saturating, truncating integers; nan -> 0); MIN/MAX are IEEE 754-2019 (nan if
  either is nan, -0 below +0).

Math functions are torch's, which may differ from the GPU's libdevice in the last
bits: compare those with a tolerance.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from gint import isa
from gint.host.program import Program
from gint.kernel.config import DEFAULT

F32 = torch.float32
WARP = 32
ROW_CHUNK = WARP * DEFAULT.ept  # elements of a row one warp covers per chunk


def _fma(a, b, c):
    """a * b + c rounded once to float32, as the GPU's fma.rn.f32: the float64 sum is
    rounded to odd (exact sum known from TwoSum), so rounding it to float32 rounds once."""
    a, b, c = torch.broadcast_tensors(a.double(), b.double(), c.double())
    product = a * b  # exact: 24 + 24 bits
    total = product + c
    virtual = total - product
    error = (product - (total - virtual)) + (c - virtual)  # total + error == product + c exactly
    inexact = (error != 0) & torch.isfinite(total)
    toward_zero = torch.where((error < 0) == (total > 0), torch.nextafter(total, torch.zeros_like(total)), total)
    odd = (toward_zero.view(torch.int64) | 1).view(torch.float64)
    return torch.where(inexact, odd, total).float()


def _truth(x):
    return x.to(F32)


def _sign_bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int32)


def ieee_maximum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IEEE 754-2019 maximum: nan if either is nan, +0 above -0 (the kernel's MAX)."""
    a, b = torch.broadcast_tensors(a, b)
    tie = (_sign_bits(a) & _sign_bits(b)).view(F32)
    out = torch.where(a > b, a, torch.where(b > a, b, tie))
    return torch.where(torch.isnan(a) | torch.isnan(b), torch.full_like(a, math.nan), out)


def ieee_minimum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IEEE 754-2019 minimum: nan if either is nan, -0 below +0 (the kernel's MIN)."""
    a, b = torch.broadcast_tensors(a, b)
    tie = (_sign_bits(a) | _sign_bits(b)).view(F32)
    out = torch.where(a < b, a, torch.where(b < a, b, tie))
    return torch.where(torch.isnan(a) | torch.isnan(b), torch.full_like(a, math.nan), out)


# Computed instructions: name -> torch function over float32 tensors.
COMPUTE = {
    "ADD": torch.add,
    "SUB": torch.sub,
    "MUL": torch.mul,
    "DIV": torch.div,
    "FMA": _fma,
    "NEG": torch.neg,
    "MIN": ieee_minimum,
    "MAX": ieee_maximum,
    "EQ": lambda a, b: _truth(a == b),
    "NE": lambda a, b: _truth(a != b),
    "LT": lambda a, b: _truth(a < b),
    "LE": lambda a, b: _truth(a <= b),
    "GT": lambda a, b: _truth(a > b),
    "GE": lambda a, b: _truth(a >= b),
    "SELECT": lambda c, a, b: torch.where(c != 0, a, b),
    "ABS": torch.abs,
    "FLOOR": torch.floor,
    "CEIL": torch.ceil,
    "TRUNC": torch.trunc,
    "ROUND": torch.round,
    "FLOORDIV": lambda a, b: torch.div(a, b, rounding_mode="floor"),
}

# Operators with a built-in float32 constant: name -> torch function of (a, imm).
COMPUTE_IMMEDIATE = {
    "ADDI": torch.add,
    "SUBI": torch.sub,
    "RSUBI": lambda a, imm: torch.sub(imm, a),
    "MULI": torch.mul,
    "DIVI": torch.div,
    "RDIVI": lambda a, imm: torch.div(imm, a),
    "MINI": ieee_minimum,
    "MAXI": ieee_maximum,
    "LTI": lambda a, imm: _truth(a < imm),
    "GTI": lambda a, imm: _truth(a > imm),
}


def _gelu(x, inner: float = 0.0):
    # the ISA's formula, x * Phi(x) = x/2 (1 + erf(x / sqrt 2)) in float32, as CUDA's kernel
    # computes it: gelu(+inf) is +inf (torch's CPU kernel gives nan there)
    return x * 0.5 * (1.0 + torch.erf(x * 0.7071067811865476) * (1.0 + inner))


def _gelu_tanh(x, inner: float = 0.0):
    # the ISA's formula in float32; below x = -5 the result is 1 - |tanh| over a few ulps,
    # so it hinges on tanh's last bit (torch's vectorized tanh rounds to -1 there, libdevice
    # does not): ``inner`` perturbs the tanh, letting the fuzzer see that
    cube = 0.044715 * x * x * x
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + cube)) * (1.0 + inner))


# Functions the kernel composes from others (gint.kernel.mathfn): they take the perturbation
# of the math function inside them, where cancellation after it can magnify its last bit.
COMPOSITES = {"gelu": _gelu, "gelu_tanh": _gelu_tanh}


def _fmod(a, b):
    # libm's fmodf, exact; torch's vectorized CPU fmod computes a - trunc(a / b) * b, which
    # is nan once a / b overflows (fmod(1e30, 1e-23)) and loses bits long before
    a, b = torch.broadcast_tensors(a, b)
    return torch.from_numpy(np.fmod(a.contiguous().numpy(), b.contiguous().numpy()))


def _remainder(a, b):
    r = _fmod(a, b)
    return torch.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


# MATH functions: name -> torch function over float32 tensors (names from isa.FUNCTIONS).
MATH = {
    **{name: getattr(torch, name) for name in (
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
        "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "sigmoid",
        "pow", "atan2",
    )},  # fmt: skip
    "fmod": _fmod,
    **COMPOSITES,
    "to_bf16": lambda x: x.bfloat16().float(),
    "to_f16": lambda x: x.half().float(),
    "remainder": _remainder,
}
# math functions with an instruction of their own compute what MATH computes
COMPUTE.update({name: MATH[function] for function, name in isa.DIRECT_FUNCTIONS.items()})

COMBINE = {r.code: COMPUTE[r.combine] for r in isa.REDUCTIONS}


def warp_reduce(values: torch.Tensor, code: int) -> torch.Tensor:
    """REDUCE ``code`` of each row's chunk (``values``: rows x ROW_CHUNK) in the kernel's
    order, broadcast back over the chunk: lane t holds elements g*4*32 + 4t + v (runs of 4),
    folds its own in turn, then combines with lane t ^ m for m = 16, 8, 4, 2, 1."""
    rows = values.shape[0]
    groups, vec = DEFAULT.groups, DEFAULT.vec
    lanes = values.reshape(rows, groups, WARP, vec).permute(0, 2, 1, 3).reshape(rows, WARP, groups * vec)
    combine = COMBINE[code]
    folded = lanes[:, :, 0]
    for k in range(1, groups * vec):
        folded = combine(folded, lanes[:, :, k])
    lane = torch.arange(WARP)
    for mask in (16, 8, 4, 2, 1):
        folded = combine(folded, folded[:, lane ^ mask])
    return folded[:, :1].expand(rows, values.shape[1]).contiguous()


def to_dtype(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float32 ``values`` as the kernel stores them to a ``dtype`` tensor."""
    if dtype == torch.bool:
        return values != 0
    if not dtype.is_floating_point:
        # CUDA's cvt.rzi with gint's saturation: truncate, clamp to the range, nan -> 0
        info = torch.iinfo(dtype)
        wide = torch.nan_to_num(values.double(), nan=0.0).trunc()
        out = wide.clamp(-(2.0**63), 2.0**63 - 1024).to(torch.int64)  # the largest float64 below 2**63; the ends next
        out = torch.where(wide >= 2.0 ** (info.bits - 1), torch.tensor(info.max), out)
        out = torch.where(wide < -(2.0 ** (info.bits - 1)), torch.tensor(info.min), out)
        return out.clamp(info.min, info.max).to(dtype)
    return values.to(dtype)


class _Machine:
    def __init__(self, program: Program, tensors: list[torch.Tensor]):
        self.program = program
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        self.shape = tuple(shape) if len(shape) else (1,)
        self.n = self.shape[-1]
        self.rows = math.prod(self.shape[:-1])
        self.chunk_len = ROW_CHUNK if program.is_row_program else max(self.n, 1)
        # per slot: (rows x n) float32 values, and whether the slot moves along the row
        self.values = [t.to(F32).expand(*self.shape).reshape(self.rows, self.n) for t in tensors]
        self.tensors = tensors
        self.out = [t.clone() for t in tensors]
        self.written: dict[int, torch.Tensor] = {}  # per stored slot: which (row, element) were written
        self.marks = [torch.zeros(self.rows, self.n, dtype=torch.int8) for _ in tensors]

    def positions(self, chunk: int) -> torch.Tensor:
        return chunk * self.chunk_len + torch.arange(self.chunk_len)

    def load(self, slot: int, offset: int, chunk: int, marks: bool = False) -> torch.Tensor:
        """The slot's values (or with ``marks``, their marks) at the chunk's positions + offset."""
        source = self.marks[slot] if marks else self.values[slot]
        p = self.positions(chunk) + offset
        inside = (p >= 0) & (p < self.n)
        gathered = source[:, p.clamp(0, max(self.n - 1, 0))] if self.n else torch.zeros(self.rows, p.numel(), dtype=source.dtype)
        return torch.where(inside, gathered, torch.zeros((), dtype=source.dtype))

    def store(self, slot: int, offset: int, chunk: int, value: torch.Tensor, mark: torch.Tensor) -> None:
        t = self.tensors[slot]
        i = self.positions(chunk)
        j = i + offset
        ok = (i < self.n) & (j >= 0) & (j < self.n)
        per_row = t.shape[-1:] != (self.n,) and self.n != 1 if t.dim() else self.n != 1
        if slot not in self.written:
            self.written[slot] = torch.zeros(self.rows, self.n, dtype=torch.bool)
            self.values[slot] = self.values[slot].clone()
        target, written = self.values[slot], self.written[slot]
        if per_row:
            ok &= j == 0  # a per-row result: element 0 of the row only
        target[:, j[ok]] = to_dtype(value[:, ok], t.dtype).to(F32)  # later loads read what was stored
        written[:, j[ok]] = True
        self.marks[slot][:, j[ok]] = mark.expand(value.shape)[:, ok]
        if per_row:  # it does not move along the row: every element reads element 0
            target[:, :] = target[:, :1].clone()
            self.marks[slot][:, :] = self.marks[slot][:, :1].clone()

    def finish(self) -> list[torch.Tensor]:
        for slot, written in self.written.items():
            t = self.out[slot]
            values = to_dtype(self.values[slot], t.dtype)
            old = t.expand(*self.shape).reshape(self.rows, self.n)
            if t.shape[-1:] != (self.n,) or t.dim() == 0:  # a per-row result: element 0 of each row
                values, written, old = values[:, :1], written[:, :1], old[:, :1]
            t.copy_(torch.where(written, values, old).reshape(t.shape))
        return self.out

    def finish_marks(self) -> dict[int, torch.Tensor]:
        """Per stored slot, each element's mark, shaped as the slot's tensor."""
        result = {}
        for slot in self.written:
            t, marks = self.out[slot], self.marks[slot]
            if t.shape[-1:] != (self.n,) or t.dim() == 0:
                marks = marks[:, :1]
            result[slot] = marks.reshape(t.shape)
        return result


# Math functions exact in float32 both here and in the kernel (libdevice's fmodf is exact),
# which perturbation would only make look unstable.
EXACT_FUNCTIONS = frozenset({"to_bf16", "to_f16", "fmod", "remainder"})
_INEXACT_DIRECT = frozenset(name for function, name in isa.DIRECT_FUNCTIONS.items() if function not in EXACT_FUNCTIONS)


def _nudge(perturb: float, pc: int, shape) -> torch.Tensor | float:
    """Relative moves of about ``perturb`` for the math instruction at ``pc``: each element
    its own size (0.5x-1.5x) and sign, fixed by ``pc``, so that results of different math
    instructions move apart (``fmod(a, b)`` of equally scaled a and b would not move)."""
    if not perturb:
        return 0.0
    generator = torch.Generator().manual_seed(pc)
    size = torch.rand(shape, generator=generator) + 0.5
    sign = torch.randint(0, 2, shape, generator=generator) * 2 - 1
    return perturb * size * sign


# Marks: where a result can be compared. INEXACT values went through a math function
# (libdevice and torch may differ in its last bits): compared within a tolerance, where
# perturbation does not move them. UNRELIABLE values went through an operator that can
# jump when an operand moves by its last bit (floor, a comparison, fmod, a select's
# condition, truncation to an integer, pow of a base <= 0) with an INEXACT operand: not compared at all,
# because whether the kernel lands on the same side is up to the math library.
EXACT, INEXACT, UNRELIABLE = 0, 1, 2
JUMPS = frozenset({"FLOOR", "CEIL", "TRUNC", "ROUND", "FLOORDIV", "EQ", "NE", "LT", "LE", "GT", "GE", "LTI", "GTI"})
JUMPING_FUNCTIONS = frozenset({"fmod", "remainder"})


def _jumped(mark: torch.Tensor) -> torch.Tensor:
    """The mark of a result that can jump: UNRELIABLE where its operand was not exact."""
    return torch.where(mark > EXACT, UNRELIABLE, EXACT).to(torch.int8)


_TINY = 2.0**-126  # below it, one math library may underflow to 0 where another gives 2**-149


def _nudged(value: torch.Tensor, nudge) -> torch.Tensor:
    """``value`` moved by the relative ``nudge``; a result in the denormal range (0 among
    them) moves by the smallest denormal, as ``erfc(10.04)`` is 0 in torch, 2**-149 in
    libdevice (and pow of a negative number to it nan)."""
    if isinstance(nudge, float) and not nudge:
        return value
    moved = value * (1.0 + nudge)
    tiny = moved.abs() < _TINY
    return torch.where(tiny, moved + torch.sign(nudge) * 2.0**-149, moved)


def execute(
    program: Program, tensors: list[torch.Tensor], max_steps: int = 1 << 20, perturb: float = 0.0, marks: bool = False
):
    """Run ``program`` as the kernel would; return new tensors (inputs unchanged) with the
    stores applied. ``tensors`` are CPU tensors in slot order. ``perturb`` scales every math
    function's result by about ``1 + perturb`` (``_nudge``; exact functions are left
    alone): comparing such runs shows which results depend on the last bits of a math
    function (which differ between libdevice and torch). With ``marks``, also return
    per slot each element's mark (``EXACT``, ``INEXACT``, ``UNRELIABLE``; see ``JUMPS``)."""
    m = _Machine(program, tensors)
    code = program.code
    stack: list[torch.Tensor] = []
    parked: list[torch.Tensor] = []  # the math registers
    # each value's mark, as the values are laid out (in the stack, the math registers, memory)
    stack_marks: list[torch.Tensor] = []
    parked_marks: list[torch.Tensor] = []
    shape = (m.rows, m.chunk_len)
    exact = torch.zeros(shape, dtype=torch.int8)
    pc, chunk, steps = 0, 0, 0
    while pc < len(code):
        steps += 1
        if steps > max_steps:
            raise RuntimeError("the program did not halt")
        opcode, operand = code[pc]
        ins = isa.BY_OPCODE[opcode]
        name = ins.name
        pc += 1
        if name == "HALT":
            break
        if name == "LOAD":
            stack.append(m.load(*isa.decode_slot(operand), chunk))
            stack_marks.append(m.load(*isa.decode_slot(operand), chunk, marks=True))
        elif name == "STORE":
            slot, offset = isa.decode_slot(operand)
            mark = stack_marks.pop()
            if not m.tensors[slot].dtype.is_floating_point:  # truncated to an integer: a jump
                mark = _jumped(mark)
            m.store(slot, offset, chunk, stack.pop(), mark)
        elif name in ("CONST", "ROWLEN"):
            value = isa.bits_f32(operand) if name == "CONST" else float(m.n)
            stack.append(torch.full(shape, value, dtype=F32))
            stack_marks.append(exact)
        elif name == "PICK":
            stack.append(stack[-1 - operand])
            stack_marks.append(stack_marks[-1 - operand])
        elif name == "POKE":
            value, mark = stack.pop(), stack_marks.pop()
            stack[-1 - operand], stack_marks[-1 - operand] = value, mark
        elif name in ("PARK", "PARK2"):
            count = 1 if name == "PARK" else 2
            parked, parked_marks = stack[len(stack) - count :], stack_marks[len(stack) - count :]
            del stack[len(stack) - count :], stack_marks[len(stack_marks) - count :]
        elif name == "MATH":
            function = isa.FUNCTION_BY_CODE[operand].name
            nudge = 0.0 if function in EXACT_FUNCTIONS else _nudge(perturb, pc, shape)
            inner = {"inner": -nudge} if function in COMPOSITES else {}
            mark = functools.reduce(torch.maximum, parked_marks)
            if function in JUMPING_FUNCTIONS:
                mark = _jumped(mark)
            elif function == "pow":  # of a base <= 0: nan, or not, as the exponent is an integer
                mark = torch.where(parked[0] <= 0, _jumped(mark), mark)
            parked = [_nudged(MATH[function](*parked, **inner), nudge)]
            parked_marks = [mark if function in EXACT_FUNCTIONS else mark.clamp(min=INEXACT)]
        elif name == "UNPARK":
            stack.append(parked.pop())
            stack_marks.append(parked_marks.pop())
        elif name == "ROWMASK":
            past = m.positions(chunk) >= m.n
            stack.append(torch.where(past, torch.tensor(isa.bits_f32(operand), dtype=F32), stack.pop()))
            stack_marks.append(torch.where(past, exact, stack_marks.pop()))
        elif name == "REDUCE":
            parked = [warp_reduce(parked[0], operand)]
            parked_marks = [parked_marks[0].amax(dim=1, keepdim=True).expand(shape)]  # every element feeds the result
        elif name == "NEXTCHUNK":
            chunk += 1
            if chunk * m.chunk_len < m.n:
                pc = operand
            else:
                chunk = 0
        elif name in COMPUTE_IMMEDIATE:
            value = stack.pop()
            stack.append(COMPUTE_IMMEDIATE[name](value, torch.full(shape, isa.bits_f32(operand), dtype=F32)))
            stack_marks.append(_jumped(stack_marks.pop()) if name in JUMPS else stack_marks.pop())
        elif name in COMPUTE:
            args = stack[len(stack) - ins.pops :]
            del stack[len(stack) - ins.pops :]
            value = COMPUTE[name](*args)
            direct = name in _INEXACT_DIRECT  # a math function of its own row, not exact
            stack.append(_nudged(value, _nudge(perturb, pc, shape) if direct else 0.0))
            operands = stack_marks[len(stack_marks) - ins.pops :]
            del stack_marks[len(stack_marks) - ins.pops :]
            if name == "SELECT":  # a jump in its condition only
                operands[0] = _jumped(operands[0])
            mark = functools.reduce(torch.maximum, operands)
            if direct:
                mark = mark.clamp(min=INEXACT)
            stack_marks.append(_jumped(mark) if name in JUMPS else mark)
        else:  # pure stack moves: rearrange by the names in the stack effect
            for values in (stack, stack_marks):
                args = dict(zip(ins.inputs, values[len(values) - ins.pops :]))
                del values[len(values) - ins.pops :]
                values.extend(args[o] for o in ins.outputs)
    out = m.finish()
    return (out, m.finish_marks()) if marks else out
