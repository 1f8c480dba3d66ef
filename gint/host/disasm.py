"""Disassembler and assembler: a readable listing that assembles back to the same program.

A listing starts with a ``.slots`` line naming the tensor slots, then one line per
instruction: index, mnemonic, operand, and a comment with the stack depth before
and after (and the slot's name for loads and stores)::

    .slots x, y, out
       0  load    %0         ; depth 0 -> 1  x
       1  const   2.0        ; depth 1 -> 2
       2  mul                ; depth 2 -> 1
    ...

Operands: ``%slot`` with an optional ``+k``/``-k`` element offset, a float for
immediates (hex bits ``0x...`` when a float would not round-trip, e.g. nan payloads),
an integer for stack positions, a function name for ``math``. Comments (``;`` to end of line) are ignored.
"""

from __future__ import annotations

import math
import re

import numpy as np

from gint import isa
from gint.host.program import Program

_BY_MNEMONIC = {ins.mnemonic: ins for ins in isa.TABLE}


def format_operand(ins: isa.Instr, operand: int) -> str:
    kind = ins.operand
    if kind is isa.Operand.NONE:
        return ""
    if kind is isa.Operand.SLOT:
        slot, offset = isa.decode_slot(operand)
        return f"%{slot}" + (f"{offset:+d}" if offset else "")
    if kind is isa.Operand.F32:
        value = isa.bits_f32(operand)
        shortest = str(np.float32(value))  # the shortest text that reads back as this float32
        if not math.isnan(value) and isa.f32_bits(float(shortest)) == operand:
            return shortest
        return f"0x{operand & 0xFFFFFFFF:08x}"
    if kind is isa.Operand.FUNC:
        fn = isa.FUNCTION_BY_CODE.get(operand)
        return fn.name if fn is not None else str(operand)
    if kind is isa.Operand.REDUCTION:
        reduction = isa.REDUCTION_BY_CODE.get(operand)
        return reduction.name if reduction is not None else str(operand)
    return str(operand)


def parse_operand(ins: isa.Instr, text: str) -> int:
    kind = ins.operand
    if kind is isa.Operand.NONE:
        if text:
            raise ValueError(f"{ins.mnemonic} takes no operand, got {text!r}")
        return 0
    if not text:
        raise ValueError(f"{ins.mnemonic} needs a {kind.value} operand")
    if kind is isa.Operand.SLOT:
        match = re.fullmatch(r"%(\d+)([+-]\d+)?", text)
        if match is None:
            raise ValueError(f"bad slot operand {text!r}; expected %N or %N+K")
        return isa.encode_slot(int(match.group(1)), int(match.group(2) or 0))
    if kind is isa.Operand.F32:
        if text.lower().startswith("0x"):
            bits = int(text, 16)
            if not 0 <= bits <= 0xFFFFFFFF:
                raise ValueError(f"float bits {text} do not fit in 32 bits")
            return bits - (1 << 32) if bits >= 1 << 31 else bits
        return isa.f32_bits(float(text))
    if kind is isa.Operand.FUNC:
        fn = isa.FUNCTION_BY_NAME.get(text)
        if fn is None:
            raise ValueError(f"no math function {text!r}; known: {', '.join(isa.FUNCTION_BY_NAME)}")
        return fn.code
    if kind is isa.Operand.REDUCTION:
        reduction = isa.REDUCTION_BY_NAME.get(text)
        if reduction is None:
            raise ValueError(f"no reduction {text!r}; known: {', '.join(isa.REDUCTION_BY_NAME)}")
        return reduction.code
    return int(text)


def disassemble(program: Program, depths: list[int] | None = None) -> str:
    """The listing of ``program``. Depths come from the verifier unless given."""
    from gint.host.verifier import verify

    if depths is None:
        depths = verify(program)
    lines = [".slots " + ", ".join(program.slot_names)]
    for index, ((opcode, operand), depth) in enumerate(zip(program.code, depths, strict=True)):
        ins = isa.BY_OPCODE[opcode]
        after = depth - ins.pops + ins.pushes
        note = f"; depth {depth} -> {after}"
        if ins.operand is isa.Operand.SLOT:
            slot, _ = isa.decode_slot(operand)
            note += f"  {program.slot_names[slot]}"
        lines.append(f"{index:4d}  {ins.mnemonic:<7} {format_operand(ins, operand):<10} {note}")
    return "\n".join(lines)


def assemble(text: str) -> Program:
    """Parse a listing (as ``disassemble`` writes it) back into a ``Program``."""
    slots: tuple[str, ...] | None = None
    code: list[tuple[int, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        try:
            if line.startswith(".slots"):
                names = line[len(".slots") :].strip()
                slots = tuple(n.strip() for n in names.split(",")) if names else ()
                continue
            tokens = line.split()
            if tokens[0].isdigit():
                if int(tokens[0]) != len(code):
                    raise ValueError(f"index {tokens[0]} out of sequence (expected {len(code)})")
                tokens = tokens[1:]
            if not tokens or len(tokens) > 2:
                raise ValueError("expected: [index] mnemonic [operand]")
            ins = _BY_MNEMONIC.get(tokens[0].lower())
            if ins is None:
                raise ValueError(f"unknown mnemonic {tokens[0]!r}")
            code.append((ins.opcode, parse_operand(ins, tokens[1] if len(tokens) == 2 else "")))
        except ValueError as error:
            raise ValueError(f"line {number}: {error}: {raw.strip()!r}") from None
    if slots is None:
        raise ValueError("listing has no '.slots' line")
    return Program(tuple(code), slots)
