"""The gint instruction set, on one page.

Every instruction is one row of ``TABLE``: its name, opcode, operand kind, stack
effect and meaning, plus the element-wise expression the kernel evaluates. The
kernel's dispatch (``gint.kernel.codegen``), the frontend builders
(``gint.host.frontend``), the verifier, the assembler and the disassembler are all
derived from this table. Rows without ``expr`` (``SPECIAL``: memory, immediates,
stack moves, the row instructions) have their kernel cases in ``gint.kernel.codegen``
and ``gint.kernel.rowcases``, and the host's scheduler emits them by name.

The machine: every thread runs the program over several elements of the iteration
domain at once (``gint.kernel.config``). Each stack entry is a float32 per element; the stack holds at most
``MAX_DEPTH`` entries and lives in registers, because the assembler specializes
every instruction to the stack depth at which it runs (the verifier proves that
depth is the same on every path). Tensors are reached through slots ``0 ..
MAX_SLOTS-1`` of the tensor table; loads convert any supported dtype to float32,
stores round float32 to the slot's dtype once.

Stack effects read like Forth/CPython: ``"a b -- r"`` pops ``b`` (the top) and
``a`` and pushes ``r``. Names that appear on both sides are moved, not computed.
``expr`` is a Python expression over the popped names for the single computed
output (and ``imm``, the float32 operand, in rows whose operand is F32); helper
names in it (``minimum``, ``fma``, ...) are kernel device functions in
``gint.kernel.device``. Rows with ``expr=None`` are pure stack moves or are
lowered specially by name in the code generator (memory, immediates, PICK/POKE,
HALT).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field

import numpy as np

MAX_DEPTH = 8  # stack entries; each is one register per element a thread handles
MAX_SLOTS = 8  # tensors one program can reach
SLOT_BITS = 4  # low bits of a SLOT operand; the rest is a signed element offset
OFFSET_MIN = -(1 << (31 - SLOT_BITS))
OFFSET_MAX = (1 << (31 - SLOT_BITS)) - 1


class Operand(enum.Enum):
    """What an instruction's 32-bit operand word means."""

    NONE = "none"  # must be 0
    SLOT = "slot"  # tensor slot (low 4 bits) + signed element offset along the row
    F32 = "f32"  # IEEE-754 float32 immediate, stored as its bit pattern
    DEPTH = "depth"  # stack position counted from the top, 0 = top
    FUNC = "func"  # a math function's code in ``FUNCTIONS``
    REDUCTION = "reduction"  # a reduction's code in ``REDUCTIONS``
    TARGET = "target"  # an instruction index (a backward branch's destination)


@dataclass(frozen=True)
class Instr:
    """One instruction of the ISA."""

    name: str
    opcode: int
    operand: Operand
    effect: str
    meaning: str
    expr: str | None = None
    inputs: tuple[str, ...] = field(init=False)
    outputs: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        before, sep, after = self.effect.partition("--")
        if not sep:
            raise ValueError(f"{self.name}: stack effect needs '--': {self.effect!r}")
        object.__setattr__(self, "inputs", tuple(before.split()))
        object.__setattr__(self, "outputs", tuple(after.split()))

    @property
    def pops(self) -> int:
        return len(self.inputs)

    @property
    def pushes(self) -> int:
        return len(self.outputs)

    @property
    def mnemonic(self) -> str:
        return self.name.lower()


_N, _S, _F, _D, _M = Operand.NONE, Operand.SLOT, Operand.F32, Operand.DEPTH, Operand.FUNC
_R, _T = Operand.REDUCTION, Operand.TARGET

# fmt: off
TABLE: tuple[Instr, ...] = (
    #     name      op  operand  effect            meaning                                              expr
    Instr("HALT",    0, _N, "--",             "end of program (what is left on the stack is dropped)"),
    Instr("LOAD",    1, _S, "-- v",           "v := slot[i + offset] as float32; 0 outside the row"),
    Instr("STORE",   2, _S, "v --",           "slot[i + offset] := v rounded to the slot's dtype"),
    Instr("CONST",   3, _F, "-- v",           "v := the float32 immediate"),
    Instr("DUP",     4, _N, "a -- a a",       "copy the top"),
    Instr("POP",     5, _N, "a --",           "drop the top"),
    Instr("SWAP",    6, _N, "a b -- b a",     "exchange the top two"),
    Instr("OVER",    7, _N, "a b -- a b a",   "copy the second to the top"),
    Instr("ROT",     8, _N, "a b c -- b c a", "rotate the third to the top"),
    Instr("PICK",    9, _D, "-- v",           "v := copy of the entry n below the top (PICK 0 = DUP)"),
    Instr("POKE",   10, _D, "v --",           "pop v, then overwrite the entry n below the new top"),
    Instr("ADD",    11, _N, "a b -- r",       "r := a + b",                                         "a + b"),
    Instr("SUB",    12, _N, "a b -- r",       "r := a - b",                                         "a - b"),
    Instr("MUL",    13, _N, "a b -- r",       "r := a * b",                                         "a * b"),
    Instr("DIV",    14, _N, "a b -- r",       "r := a / b (IEEE: x/0 is inf or nan)",               "a / b"),
    Instr("FMA",    15, _N, "a b c -- r",     "r := a * b + c, rounded once",                       "fma(a, b, c)"),
    Instr("NEG",    16, _N, "a -- r",         "r := -a",                                            "-a"),
    Instr("MIN",    17, _N, "a b -- r",       "r := min(a, b); nan if either is nan; -0 < +0",      "minimum(a, b)"),
    Instr("MAX",    18, _N, "a b -- r",       "r := max(a, b); nan if either is nan; -0 < +0",      "maximum(a, b)"),
    Instr("EQ",     19, _N, "a b -- r",       "r := 1.0 if a == b else 0.0",                        "truth(a == b)"),
    Instr("NE",     20, _N, "a b -- r",       "r := 1.0 if a != b else 0.0",                        "truth(a != b)"),
    Instr("LT",     21, _N, "a b -- r",       "r := 1.0 if a < b else 0.0",                         "truth(a < b)"),
    Instr("LE",     22, _N, "a b -- r",       "r := 1.0 if a <= b else 0.0",                        "truth(a <= b)"),
    Instr("GT",     23, _N, "a b -- r",       "r := 1.0 if a > b else 0.0",                         "truth(a > b)"),
    Instr("GE",     24, _N, "a b -- r",       "r := 1.0 if a >= b else 0.0",                        "truth(a >= b)"),
    Instr("SELECT", 25, _N, "c a b -- r",     "r := a if c != 0 else b",                            "select(c, a, b)"),
    Instr("ABS",    26, _N, "a -- r",         "r := |a|",                                           "fabs(a)"),
    Instr("FLOOR",  27, _N, "a -- r",         "r := largest integer <= a",                          "floor(a)"),
    Instr("CEIL",   28, _N, "a -- r",         "r := smallest integer >= a",                         "ceil(a)"),
    Instr("TRUNC",  29, _N, "a -- r",         "r := a rounded toward zero",                         "trunc(a)"),
    Instr("ROUND",  30, _N, "a -- r",         "r := a rounded to nearest, ties to even",            "rint(a)"),
    Instr("FLOORDIV", 31, _N, "a b -- r",     "r := floor(a / b) as torch computes it",             "floor_divide(a, b)"),
    # a binary operator with its constant operand in the instruction: one dispatch, not CONST + op
    Instr("ADDI",   32, _F, "a -- r",         "r := a + imm",                                       "a + imm"),
    Instr("SUBI",   33, _F, "a -- r",         "r := a - imm",                                       "a - imm"),
    Instr("RSUBI",  34, _F, "a -- r",         "r := imm - a",                                       "imm - a"),
    Instr("MULI",   35, _F, "a -- r",         "r := a * imm",                                       "a * imm"),
    Instr("DIVI",   36, _F, "a -- r",         "r := a / imm",                                       "a / imm"),
    Instr("RDIVI",  37, _F, "a -- r",         "r := imm / a",                                       "imm / a"),
    Instr("MINI",   38, _F, "a -- r",         "r := min(a, imm) as MIN",                           "minimum(a, imm)"),
    Instr("MAXI",   39, _F, "a -- r",         "r := max(a, imm) as MAX",                           "maximum(a, imm)"),
    Instr("LTI",    40, _F, "a -- r",         "r := 1.0 if a < imm else 0.0",                       "truth(a < imm)"),
    Instr("GTI",    41, _F, "a -- r",         "r := 1.0 if a > imm else 0.0",                       "truth(a > imm)"),
    # math functions run on the math register (the deepest stack registers, free while
    # parked), so the kernel has ONE case per function, not one per function and depth
    Instr("PARK",   42, _N, "a --",           "move the top to the math register x"),
    Instr("PARK2",  43, _N, "a b --",         "move the top two to the math registers (x := a, y := b)"),
    Instr("MATH",   44, _M, "--",             "x := f(x) or f(x, y) for the function f (FUNCTIONS); any depth"),
    Instr("UNPARK", 45, _N, "-- r",           "push the math register x"),
    # row programs: each warp walks whole rows of the domain, chunk by chunk, so a row's
    # reduction needs no atomics and no second launch (docs/design-reductions.md)
    Instr("ROWMASK", 46, _F, "a -- r",        "r := a inside the row, imm outside (a reduction's identity)"),
    Instr("ROWLEN", 47, _N, "-- n",           "n := the number of elements in the row, as float32"),
    Instr("REDUCE", 48, _R, "--",             "x := the reduction (REDUCTIONS) of the math register x over the warp's row, in every element; any depth"),
    Instr("NEXTCHUNK", 49, _T, "--",          "move to the row's next chunk and jump to the target, or, after the last chunk, back to chunk 0 and fall through; any depth"),
    # the hottest math function (softmax, sigmoid, ...) also as a plain row: a case per depth
    # with the elements unrolled costs no PARK/UNPARK and no per-element function select
    Instr("EXP",    50, _N, "a -- r",         "r := e ** a (the same result as MATH exp)",          "exp(a)"),
    # a 16-bit intermediate rounded where eager rounds it (a comparison reads it): in place,
    # 5 SASS an element, where PARK; MATH to_bf16; UNPARK costs 75 (shared/notes/kernel-sass.md)
    Instr("TOBF16", 51, _N, "a -- r",         "r := a rounded to bfloat16 (as MATH to_bf16)",       "round_to_bf16(a)"),
    Instr("TOF16",  52, _N, "a -- r",         "r := a rounded to float16 (as MATH to_f16)",         "round_to_f16(a)"),
    # the activations of real models, in place: transformers' GPT-2 MLP (gelu_new) is a tanh,
    # BERT's is torch's erf gelu; through MATH each paid ~70 SASS an element of moves and selects
    Instr("TANH",   53, _N, "a -- r",         "r := tanh(a) (as MATH tanh)",                        "tanh(a)"),
    Instr("GELU",   54, _N, "a -- r",         "r := gelu(a), approximate='none' (as MATH gelu)",    "gelu(a)"),
)
# fmt: on

BY_NAME: dict[str, Instr] = {ins.name: ins for ins in TABLE}
BY_OPCODE: dict[int, Instr] = {ins.opcode: ins for ins in TABLE}
HALT = BY_NAME["HALT"]

IMMEDIATE = "imm"  # the name of the F32 operand in ``expr``

# Instructions the code generator lowers by name rather than from ``expr``.
SPECIAL = frozenset(
    {"HALT", "LOAD", "STORE", "CONST", "PICK", "POKE", "PARK", "PARK2", "MATH", "UNPARK", "ROWMASK", "ROWLEN", "REDUCE", "NEXTCHUNK"}
)
# Rows whose kernel case does not depend on the stack depth (one dispatch key).
ANY_DEPTH = frozenset({BY_NAME[name].opcode for name in ("MATH", "REDUCE", "NEXTCHUNK")})
# A program with any of these is a row program (the kernel gives each warp whole rows;
# code outside a NEXTCHUNK loop runs on the row's first chunk).
ROW_ONLY = frozenset({BY_NAME[name].opcode for name in ("ROWMASK", "ROWLEN", "REDUCE", "NEXTCHUNK")})


@dataclass(frozen=True)
class MathFn:
    """A math function the MATH instruction applies: ``expr`` over ``x`` (and ``y``),
    calling helpers of ``gint.kernel.mathfn``; float32 in, float32 out."""

    name: str
    code: int
    arity: int
    meaning: str
    expr: str


# fmt: off
FUNCTIONS: tuple[MathFn, ...] = (
    #      name          code arity meaning                                        expr
    MathFn("exp",          0, 1, "e ** x",                                        "exp(x)"),
    MathFn("exp2",         1, 1, "2 ** x",                                        "exp2(x)"),
    MathFn("expm1",        2, 1, "e ** x - 1, exact near 0",                      "expm1(x)"),
    MathFn("log",          3, 1, "natural logarithm",                             "log(x)"),
    MathFn("log2",         4, 1, "base-2 logarithm",                              "log2(x)"),
    MathFn("log10",        5, 1, "base-10 logarithm",                             "log10(x)"),
    MathFn("log1p",        6, 1, "log(1 + x), exact near 0",                      "log1p(x)"),
    MathFn("sqrt",         7, 1, "square root",                                   "sqrt(x)"),
    MathFn("rsqrt",        8, 1, "1 / sqrt(x)",                                   "rsqrt(x)"),
    MathFn("sin",          9, 1, "sine",                                          "sin(x)"),
    MathFn("cos",         10, 1, "cosine",                                        "cos(x)"),
    MathFn("tan",         11, 1, "tangent",                                       "tan(x)"),
    MathFn("asin",        12, 1, "arc sine",                                      "asin(x)"),
    MathFn("acos",        13, 1, "arc cosine",                                    "acos(x)"),
    MathFn("atan",        14, 1, "arc tangent",                                   "atan(x)"),
    MathFn("sinh",        15, 1, "hyperbolic sine",                               "sinh(x)"),
    MathFn("cosh",        16, 1, "hyperbolic cosine",                             "cosh(x)"),
    MathFn("tanh",        17, 1, "hyperbolic tangent",                            "tanh(x)"),
    MathFn("asinh",       18, 1, "inverse hyperbolic sine",                       "asinh(x)"),
    MathFn("acosh",       19, 1, "inverse hyperbolic cosine",                     "acosh(x)"),
    MathFn("atanh",       20, 1, "inverse hyperbolic tangent",                    "atanh(x)"),
    MathFn("erf",         21, 1, "error function",                                "erf(x)"),
    MathFn("erfc",        22, 1, "1 - erf(x), exact for large x",                 "erfc(x)"),
    MathFn("sigmoid",     23, 1, "1 / (1 + e ** -x)",                             "sigmoid(x)"),
    MathFn("gelu",        24, 1, "x * Phi(x) (torch gelu, approximate='none')",   "gelu(x)"),
    MathFn("gelu_tanh",   25, 1, "torch gelu with approximate='tanh'",            "gelu_tanh(x)"),
    MathFn("to_bf16",     26, 1, "x rounded to bfloat16 (nearest even)",          "round_to_bf16(x)"),
    MathFn("to_f16",      27, 1, "x rounded to float16 (nearest even)",           "round_to_f16(x)"),
    MathFn("pow",         28, 2, "x ** y",                                        "pow(x, y)"),
    MathFn("atan2",       29, 2, "torch.atan2(x, y): the angle of the point (y, x)", "atan2(x, y)"),
    MathFn("fmod",        30, 2, "x - trunc(x / y) * y (C fmod)",                 "fmod(x, y)"),
    MathFn("remainder",   31, 2, "x - floor(x / y) * y (Python %)",               "remainder(x, y)"),
)
# fmt: on
FUNCTION_BY_NAME: dict[str, MathFn] = {f.name: f for f in FUNCTIONS}
# Math functions that also have an instruction of their own (a row above with the same
# expression): expressions use the instruction, hand-written MATH still works.
DIRECT_FUNCTIONS: dict[str, str] = {"exp": "EXP", "to_bf16": "TOBF16", "to_f16": "TOF16", "tanh": "TANH", "gelu": "GELU"}
FUNCTION_BY_CODE: dict[int, MathFn] = {f.code: f for f in FUNCTIONS}
MATH_ARGS = ("x", "y")  # the math registers, in order


@dataclass(frozen=True)
class Reduction:
    """How REDUCE combines a row: ``combine`` is the binary instruction that folds two
    values, ``identity`` the value ROWMASK gives elements outside the row."""

    name: str
    code: int
    identity: float
    combine: str
    meaning: str


# fmt: off
REDUCTIONS: tuple[Reduction, ...] = (
    #         name    code identity       combine  meaning
    Reduction("sum",  0,   0.0,           "ADD",   "sum of the row"),
    Reduction("max",  1,   float("-inf"), "MAX",   "largest element (nan if any is nan)"),
    Reduction("min",  2,   float("inf"),  "MIN",   "smallest element (nan if any is nan)"),
    Reduction("prod", 3,   1.0,           "MUL",   "product of the row"),
)
# fmt: on
REDUCTION_BY_NAME: dict[str, Reduction] = {r.name: r for r in REDUCTIONS}
REDUCTION_BY_CODE: dict[int, Reduction] = {r.code: r for r in REDUCTIONS}


def _check_table() -> None:
    """Fail at import if the table contradicts itself."""
    if len(BY_NAME) != len(TABLE) or len(BY_OPCODE) != len(TABLE):
        raise AssertionError("instruction names and opcodes must be unique")
    for ins in TABLE:
        moved = set(ins.outputs) & set(ins.inputs)
        computed = [o for o in ins.outputs if o not in ins.inputs]
        if ins.name in SPECIAL:
            continue
        if ins.expr is None and computed:
            raise AssertionError(f"{ins.name}: computes {computed} but has no expr")
        if ins.expr is not None and (len(computed) != 1 or moved):
            raise AssertionError(f"{ins.name}: an expr row computes exactly one output")
        if ins.expr is not None and (IMMEDIATE in ins.expr) != (ins.operand is Operand.F32):
            raise AssertionError(f"{ins.name}: an expr reads '{IMMEDIATE}' exactly when its operand is F32")
    for function, name in DIRECT_FUNCTIONS.items():
        fn, ins = FUNCTION_BY_NAME[function], BY_NAME[name]
        if fn.arity != 1 or ins.inputs != ("a",) or ins.expr != re.sub(r"\bx\b", "a", fn.expr):
            raise AssertionError(f"{name} must compute what MATH {function} computes")
    for reduction in REDUCTIONS:
        combine = BY_NAME[reduction.combine]
        if combine.expr is None or combine.inputs != ("a", "b") or combine.operand is not Operand.NONE:
            raise AssertionError(f"reduction {reduction.name}: {combine.name} is not a binary expression row")


_check_table()


# ---------------------------------------------------------------- operand words


def encode_slot(slot: int, offset: int = 0) -> int:
    """Pack a tensor slot and an element offset into one int32 operand."""
    if not 0 <= slot < (1 << SLOT_BITS):
        raise ValueError(f"slot {slot} does not fit in {SLOT_BITS} bits")
    if not OFFSET_MIN <= offset <= OFFSET_MAX:
        raise ValueError(f"element offset {offset} out of range")
    return (offset << SLOT_BITS) | slot


def decode_slot(word: int) -> tuple[int, int]:
    """Inverse of ``encode_slot`` for a signed int32 word."""
    return word & ((1 << SLOT_BITS) - 1), word >> SLOT_BITS


def f32_bits(value: float) -> int:
    """The IEEE float32 bit pattern of ``value`` (rounded to float32 as a cast does:
    beyond the float32 range it becomes inf) as a signed int32."""
    with np.errstate(over="ignore"):
        return int(np.array(value, dtype=np.float64).astype(np.float32).view(np.int32))


def bits_f32(word: int) -> float:
    """The float32 whose bit pattern is the int32 ``word``."""
    return struct.unpack("<f", struct.pack("<i", word))[0]


# ----------------------------------------------------------- device dispatch keys

KEYS_PER_OPCODE = MAX_DEPTH + 1


def dispatch_key(opcode: int, depth: int) -> int:
    """The word the kernel switches on: opcode specialized to the stack depth (rows in
    ``ANY_DEPTH`` have one key)."""
    return opcode * KEYS_PER_OPCODE + (0 if opcode in ANY_DEPTH else depth)


def runs_at(ins: Instr, depth: int) -> bool:
    """Whether ``ins`` may execute with ``depth`` entries on the stack."""
    return ins.pops <= depth and depth - ins.pops + ins.pushes <= MAX_DEPTH


def specializations(ins: Instr) -> list[int]:
    """Every stack depth at which the kernel has a case for ``ins``."""
    if ins.opcode in ANY_DEPTH:
        return [0]
    return [d for d in range(MAX_DEPTH + 1) if runs_at(ins, d)]
