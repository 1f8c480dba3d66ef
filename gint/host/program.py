"""A gint program as plain data, and its encoding for the kernel.

A ``Program`` is a sequence of ``(opcode, operand)`` pairs plus the names of the
tensor slots it expects. It says nothing about shapes: the same program runs over
any tensors whose layout the tensor table describes. ``encode`` turns a verified
program into the int32 words the kernel reads, with each opcode replaced by its
depth-specialized dispatch key.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from gint import abi, isa


@dataclass(frozen=True)
class Program:
    """Instructions and slot names. Build one with ``gint.host.frontend``."""

    code: tuple[tuple[int, int], ...]
    slot_names: tuple[str, ...]

    def __post_init__(self):
        code = []
        for index, pair in enumerate(self.code):
            try:
                op, arg = pair
                code.append((operator.index(op), operator.index(arg)))
            except (TypeError, ValueError):
                raise TypeError(
                    f"instruction {index} is {pair!r}: each instruction is an (opcode, operand) pair of integers "
                    "(a float immediate is encoded with gint.isa.f32_bits)"
                ) from None
        object.__setattr__(self, "code", tuple(code))
        names = tuple(self.slot_names)
        if not all(isinstance(name, str) for name in names):
            raise TypeError(f"slot names must be strings, got {names!r}")
        object.__setattr__(self, "slot_names", names)

    @property
    def n_slots(self) -> int:
        return len(self.slot_names)

    def __len__(self) -> int:
        return len(self.code)

    def slots_with(self, name: str) -> set[int]:
        """Slots that instruction ``name`` (LOAD or STORE) touches."""
        opcode = isa.BY_NAME[name].opcode
        return {isa.decode_slot(arg)[0] for op, arg in self.code if op == opcode}

    @property
    def stored_slots(self) -> set[int]:
        return self.slots_with("STORE")

    @property
    def loaded_slots(self) -> set[int]:
        return self.slots_with("LOAD")

    @property
    def offset_slots(self) -> set[int]:
        """Slots loaded or stored at a neighbouring element of the row."""
        memory = {isa.BY_NAME["LOAD"].opcode, isa.BY_NAME["STORE"].opcode}
        return {isa.decode_slot(arg)[0] for op, arg in self.code if op in memory and isa.decode_slot(arg)[1] != 0}

    @property
    def uses_offsets(self) -> bool:
        return bool(self.offset_slots)

    def loop_bodies(self) -> list[range]:
        """The instruction ranges a row program's NEXTCHUNK loops repeat (target to branch)."""
        branch = isa.BY_NAME["NEXTCHUNK"].opcode
        return [range(arg, index + 1) for index, (op, arg) in enumerate(self.code) if op == branch]

    @property
    def once_per_row_slots(self) -> set[int]:
        """Slots a row program stores outside its chunk loops. The kernel runs that code on
        the row's first chunk only, so each such slot must hold one value per row (not move
        along the row): ``gint.host.layout.plan`` checks it at launch."""
        if not self.is_row_program:
            return set()
        store = isa.BY_NAME["STORE"].opcode
        looped = {index for body in self.loop_bodies() for index in body}
        return {
            isa.decode_slot(arg)[0] for index, (op, arg) in enumerate(self.code) if op == store and index not in looped
        }

    @property
    def is_row_program(self) -> bool:
        """Whether the kernel must give each warp whole rows (the program reduces rows)."""
        return any(op in isa.ROW_ONLY for op, _ in self.code)


def streamed_slots(program: Program) -> list[int]:
    """Slots read only by LOADs at offset 0 and never stored: the kernel may ask for
    their tiles ahead of the instructions that load them."""
    return sorted(program.loaded_slots - program.offset_slots - program.stored_slots)


def encode(program: Program, depths: list[int]) -> list[int]:
    """Kernel words for ``program``; ``depths[i]`` is the stack depth before instruction i
    (the verifier's result). A header (``abi.CODE_HEADER`` words), then two int32 words
    per instruction: dispatch key, operand."""
    words: list[int] = [0] * abi.CODE_HEADER
    words[abi.CODE_STREAM_MASK] = sum(1 << slot for slot in streamed_slots(program))
    words[abi.CODE_ROW_PROGRAM] = int(program.is_row_program)
    for (opcode, operand), depth in zip(program.code, depths, strict=True):
        words += [isa.dispatch_key(opcode, depth), operand]
    # The kernel fetches instruction i+1 while executing i: pad past the final HALT.
    return words + [isa.dispatch_key(isa.HALT.opcode, 0), 0]
