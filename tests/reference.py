"""An independent model of the gint machine in eager PyTorch, the tests' oracle.

It executes a Program one instruction at a time over whole tensors (float32
values), from the meanings in the instruction table, not from the kernel's code
generator. Comparing the kernel with it checks dispatch, depth specialization,
stack moves, loads/stores, offsets and dtype conversion at once.
"""

from __future__ import annotations

import torch

from gint import isa
from gint.host.program import Program

F32 = torch.float32


def _fma(a, b, c):
    return (a.double() * b.double() + c.double()).float()


def _truth(x):
    return x.to(F32)


# Computed instructions: name -> torch function over float32 tensors.
COMPUTE = {
    "ADD": torch.add,
    "SUB": torch.sub,
    "MUL": torch.mul,
    "DIV": torch.div,
    "FMA": _fma,
    "NEG": torch.neg,
    "MIN": torch.minimum,
    "MAX": torch.maximum,
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
    "MINI": torch.minimum,
    "MAXI": torch.maximum,
    "LTI": lambda a, imm: _truth(a < imm),
    "GTI": lambda a, imm: _truth(a > imm),
}


def _gelu(approximate):
    return lambda x: torch.nn.functional.gelu(x, approximate=approximate)


def _remainder(a, b):
    r = torch.fmod(a, b)
    return torch.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


# MATH functions: name -> torch function over float32 tensors (names from isa.FUNCTIONS).
MATH = {
    **{name: getattr(torch, name) for name in (
        "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
        "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "sigmoid",
        "pow", "atan2", "fmod",
    )},  # fmt: skip
    "gelu": _gelu("none"),
    "gelu_tanh": _gelu("tanh"),
    "to_bf16": lambda x: x.bfloat16().float(),
    "to_f16": lambda x: x.half().float(),
    "remainder": _remainder,
}
# math functions with an instruction of their own compute what MATH computes
COMPUTE.update({name: MATH[function] for function, name in isa.DIRECT_FUNCTIONS.items()})


# REDUCE's reductions over the last dim (keepdim), by name (names from isa.REDUCTIONS).
REDUCE = {
    "sum": lambda v: v.sum(-1, keepdim=True),
    "max": lambda v: v.amax(-1, keepdim=True),
    "min": lambda v: v.amin(-1, keepdim=True),
    "prod": lambda v: v.prod(-1, keepdim=True),
}


def _shift(values: torch.Tensor, offset: int) -> torch.Tensor:
    """values[..., i + offset] along the last dim, 0 outside."""
    if offset == 0:
        return values
    n = values.shape[-1]
    out = torch.zeros_like(values)
    if abs(offset) < n:
        if offset > 0:
            out[..., : n - offset] = values[..., offset:]
        else:
            out[..., -offset:] = values[..., : n + offset]
    return out


def _to_dtype(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return values != 0
    if not dtype.is_floating_point:
        # CUDA semantics (cvt.rzi): truncate, saturate, nan -> 0
        info = torch.iinfo(dtype)
        values = torch.nan_to_num(values.double(), nan=0.0).clamp(info.min, info.max).trunc()
    return values.to(dtype)


def execute(program: Program, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run ``program``; return new tensors (inputs unchanged) with the stores applied."""
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    out = [t.clone() for t in tensors]
    stack: list[torch.Tensor] = []
    parked: list[torch.Tensor] = []  # the math registers
    for opcode, operand in program.code:
        ins = isa.BY_OPCODE[opcode]
        name = ins.name
        if name == "HALT":
            break
        if name == "LOAD":
            slot, offset = isa.decode_slot(operand)
            stack.append(_shift(tensors[slot].to(F32).expand(shape), offset))
        elif name == "STORE":
            slot, offset = isa.decode_slot(operand)
            value = stack.pop()
            if offset == 0 and out[slot].shape != value.shape:  # a row program's per-row result
                out[slot].copy_(_to_dtype(value[..., :1], out[slot].dtype))
            elif offset == 0:
                out[slot].copy_(_to_dtype(value, out[slot].dtype))
            else:  # element i + offset gets value[i]: shift by -offset, keep untouched elements
                shifted = _shift(value, -offset)
                mask = _shift(torch.ones_like(value), -offset) != 0
                out[slot] = torch.where(mask, _to_dtype(shifted, out[slot].dtype), out[slot])
        elif name == "CONST":
            stack.append(torch.full(shape, isa.bits_f32(operand), dtype=F32))
        elif name == "PICK":
            stack.append(stack[-1 - operand])
        elif name == "POKE":
            value = stack.pop()
            stack[-1 - operand] = value
        elif name in ("PARK", "PARK2"):
            count = 1 if name == "PARK" else 2
            parked = stack[len(stack) - count :]
            del stack[len(stack) - count :]
        elif name == "MATH":
            parked = [MATH[isa.FUNCTION_BY_CODE[operand].name](*parked)]
        elif name == "UNPARK":
            stack.append(parked.pop())
        # row programs: the reference holds whole rows, so a chunk loop runs once, on all of it
        elif name == "ROWMASK":
            pass  # no element lies past the row's end
        elif name == "ROWLEN":
            stack.append(torch.full(shape, float(shape[-1] if shape else 1), dtype=F32))
        elif name == "REDUCE":
            parked = [REDUCE[isa.REDUCTION_BY_CODE[operand].name](parked[0]).expand(shape)]
        elif name == "NEXTCHUNK":
            pass
        elif name in COMPUTE_IMMEDIATE:
            value = stack.pop()
            stack.append(COMPUTE_IMMEDIATE[name](value, torch.full(shape, isa.bits_f32(operand), dtype=F32)))
        elif name in COMPUTE:
            args = stack[len(stack) - ins.pops :]
            del stack[len(stack) - ins.pops :]
            stack.append(COMPUTE[name](*args))
        else:  # pure stack moves: rearrange by the names in the stack effect
            args = dict(zip(ins.inputs, stack[len(stack) - ins.pops :]))
            del stack[len(stack) - ins.pops :]
            stack.extend(args[o] for o in ins.outputs)
    return out
