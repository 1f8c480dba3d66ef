"""Static checks that every program passes before it can reach the GPU.

``verify`` walks the program once, tracking the stack depth. The only branch,
NEXTCHUNK, jumps backward to a point with the same depth (checked), so that single
walk covers every path; it also yields the depth before each instruction, which the
encoder needs to pick depth-specialized kernel cases.
A violation raises ``VerificationError`` naming the instruction index and the rule.

Rules (``RULES`` maps each to its meaning):
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gint import abi, isa
from gint.host.program import Program

MAX_INSTRUCTIONS = 1 << 16

RULES: dict[str, str] = {
    "empty": "a program has at least one instruction (HALT)",
    "length": f"a program has at most {MAX_INSTRUCTIONS} instructions",
    "opcode": "every opcode is in the instruction table",
    "operand": "every operand is valid for its operand kind",
    "slot": "every tensor slot is below the program's number of tensors",
    "underflow": "no instruction reads more stack entries than there are",
    "overflow": f"the stack never holds more than {isa.MAX_DEPTH} entries",
    "halt": "the program ends with HALT and nothing follows it",
    "slots": f"a program names at most {isa.MAX_SLOTS} tensor slots",
    "aliasing": "a stored slot is stored at one offset, and if it is also loaded, everything is at offset 0 "
    "(else threads race)",
    "table": "the tensor table gives one supported dtype per slot",
    "math": "PARK (one value) or PARK2 (two) is followed by MATH functions of that arity (or REDUCE, "
    "which takes one), the first of which leaves one value, then UNPARK; nothing else runs while values are parked",
    "branch": "NEXTCHUNK jumps back to an instruction after any earlier NEXTCHUNK (loops neither nest nor "
    "overlap), where the stack has the same depth and nothing is parked",
}
__doc__ += "".join(f"\n- ``{rule}``: {text}" for rule, text in RULES.items())


class VerificationError(ValueError):
    """A program broke a verifier rule at instruction ``index`` (None: the whole program)."""

    def __init__(self, index: int | None, rule: str, detail: str):
        self.index, self.rule, self.detail = index, rule, detail
        where = "program" if index is None else f"instruction {index}"
        super().__init__(f"{where}: rule '{rule}' ({RULES[rule]}): {detail}")


def _check_operand(index: int, ins: isa.Instr, operand: int, depth: int, n_slots: int) -> None:
    if not -(1 << 31) <= operand < (1 << 31):
        raise VerificationError(index, "operand", f"{operand} does not fit in int32")
    kind = ins.operand
    if kind is isa.Operand.NONE and operand != 0:
        raise VerificationError(index, "operand", f"{ins.name} takes no operand, got {operand}")
    if kind is isa.Operand.SLOT:
        slot, _ = isa.decode_slot(operand)
        if slot >= n_slots:
            raise VerificationError(index, "slot", f"{ins.name} slot {slot} with {n_slots} tensor(s)")
    if kind is isa.Operand.FUNC and operand not in isa.FUNCTION_BY_CODE:
        raise VerificationError(index, "operand", f"{ins.name}: no math function {operand}")
    if kind is isa.Operand.REDUCTION and operand not in isa.REDUCTION_BY_CODE:
        raise VerificationError(index, "operand", f"{ins.name}: no reduction {operand}")
    if kind is isa.Operand.DEPTH:
        # PICK reads the entry n below the top; POKE writes n below the top after its pop.
        reach = depth - ins.pops
        if operand < 0:
            raise VerificationError(index, "operand", f"{ins.name} position {operand} is negative")
        if operand >= reach:
            raise VerificationError(
                index, "underflow", f"{ins.name} {operand} reaches below a stack of {reach} entr(ies)"
            )


def _check_math(index: int, ins: isa.Instr, operand: int, parked: int) -> int:
    """The math-register rule; returns how many values are parked after ``ins``."""
    if ins.name in ("PARK", "PARK2"):
        if parked:
            raise VerificationError(index, "math", f"{ins.name} while {parked} value(s) are parked")
        return ins.pops  # the values it moved into the math registers
    if ins.name in ("MATH", "REDUCE"):
        arity = isa.FUNCTION_BY_CODE[operand].arity if ins.name == "MATH" else 1
        if parked != arity:
            what = isa.FUNCTION_BY_CODE[operand].name if ins.name == "MATH" else "REDUCE"
            raise VerificationError(index, "math", f"{what} takes {arity} value(s), {parked} parked")
        return 1
    if ins.name == "UNPARK":
        if parked != 1:
            raise VerificationError(index, "math", f"UNPARK with {parked} value(s) parked (needs 1)")
        return 0
    if parked:
        raise VerificationError(index, "math", f"{ins.name} while {parked} value(s) are parked")
    return 0


def _check_branch(index: int, target: int, depths: list[int], parked_at: list[int], loop_start: int) -> None:
    """NEXTCHUNK at ``index`` (``depths``/``parked_at``: state before each instruction so
    far, ``depths[index]`` included); ``loop_start``: where the current loop may begin."""
    if not loop_start <= target < index:
        raise VerificationError(
            index, "branch", f"target {target} is not an earlier instruction after the previous loop ({loop_start})"
        )
    if parked_at[target] or parked_at[index]:
        where = "here" if parked_at[index] else f"at the target {target}"
        raise VerificationError(
            index, "branch", f"{parked_at[index] or parked_at[target]} value(s) are parked in the math registers {where}"
        )
    if depths[target] != depths[index]:
        raise VerificationError(
            index, "branch", f"stack depth {depths[index]} here but {depths[target]} at the target {target}"
        )


def _check_aliasing(program: Program) -> None:
    stored, loaded = program.stored_slots, program.loaded_slots
    store_op, load_op = isa.BY_NAME["STORE"].opcode, isa.BY_NAME["LOAD"].opcode
    store_offset: dict[int, int] = {}
    for index, (opcode, operand) in enumerate(program.code):
        if opcode not in (store_op, load_op):
            continue
        slot, offset = isa.decode_slot(operand)
        if slot not in stored:
            continue
        if slot in loaded and offset != 0:
            raise VerificationError(
                index, "aliasing", f"slot {slot} is loaded and stored, but accessed here at offset {offset}"
            )
        if opcode == store_op and store_offset.setdefault(slot, offset) != offset:
            raise VerificationError(
                index, "aliasing", f"slot {slot} is stored at offsets {store_offset[slot]} and {offset}"
            )


def check_table(program: Program, dtypes: Sequence[torch.dtype]) -> None:
    """The tensor table (one dtype per slot) is consistent with ``program``."""
    if len(dtypes) != program.n_slots:
        raise VerificationError(
            None, "table", f"program has {program.n_slots} slot(s), table describes {len(dtypes)}"
        )
    for slot, dtype in enumerate(dtypes):
        if dtype not in abi.DTYPE_CODE:
            supported = ", ".join(str(d) for d in abi.DTYPE_CODE)
            raise VerificationError(None, "table", f"slot {slot} has dtype {dtype}; supported: {supported}")


def verify(program: Program, dtypes: Sequence[torch.dtype] | None = None) -> list[int]:
    """Check ``program`` (and, if given, its tensor dtypes); return the stack depth
    before each instruction."""
    code = program.code
    if not code:
        raise VerificationError(None, "empty", "no instructions")
    if len(code) > MAX_INSTRUCTIONS:
        raise VerificationError(None, "length", f"{len(code)} instructions")
    if program.n_slots > isa.MAX_SLOTS:
        raise VerificationError(None, "slots", f"{program.n_slots} slots")
    depths: list[int] = []
    parked_at: list[int] = []
    depth = 0
    parked = 0  # values in the math registers
    loop_start = 0  # a NEXTCHUNK may jump back no further than here
    for index, (opcode, operand) in enumerate(code):
        ins = isa.BY_OPCODE.get(opcode)
        if ins is None:
            raise VerificationError(index, "opcode", f"unknown opcode {opcode}")
        if ins is isa.HALT:
            if index != len(code) - 1:
                raise VerificationError(index, "halt", f"{len(code) - 1 - index} instruction(s) after HALT")
        if depth < ins.pops:
            raise VerificationError(index, "underflow", f"{ins.name} pops {ins.pops}, stack has {depth}")
        _check_operand(index, ins, operand, depth, program.n_slots)
        depths.append(depth)
        parked_at.append(parked)
        if ins.operand is isa.Operand.TARGET:
            _check_branch(index, operand, depths, parked_at, loop_start)
            loop_start = index + 1
        parked = _check_math(index, ins, operand, parked)
        after = depth - ins.pops + ins.pushes
        if after > isa.MAX_DEPTH:
            raise VerificationError(index, "overflow", f"{ins.name} would leave {after} entries")
        depth = after
    if isa.BY_OPCODE[code[-1][0]] is not isa.HALT:
        raise VerificationError(len(code) - 1, "halt", "the last instruction is not HALT")
    _check_aliasing(program)
    if dtypes is not None:
        check_table(program, dtypes)
    return depths
