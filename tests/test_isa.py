"""The instruction table and everything derived from it agree: the kernel's dispatch
cases, the Assembler's builders, the verifier and the disassembler/assembler.

Every per-instruction test is parametrized over ``isa.TABLE``, so an instruction
added to the table is checked here without touching this file.
"""

import math
import re
import struct

import pytest

from gint import isa
from gint.host.disasm import assemble, disassemble
from gint.host.frontend import Assembler
from gint.host.program import Program
from gint.host.verifier import verify
from gint.kernel.codegen import kernel_source

INSTRUCTIONS = [pytest.param(ins, id=ins.name) for ins in isa.TABLE]


@pytest.fixture(scope="module")
def source() -> str:
    return kernel_source()


@pytest.fixture(scope="module")
def dispatch_cases(source) -> list[int]:
    """Every ``key == N`` the generated kernel switches on, in order."""
    return [int(k) for k in re.findall(r"\bkey == (\d+):", source)]


# ------------------------------------------------------------------ the table itself


def test_opcodes_and_names_unique():
    opcodes = [ins.opcode for ins in isa.TABLE]
    names = [ins.name for ins in isa.TABLE]
    mnemonics = [ins.mnemonic for ins in isa.TABLE]
    assert len(set(opcodes)) == len(opcodes)
    assert len(set(names)) == len(names)
    assert len(set(mnemonics)) == len(mnemonics)
    assert all(op >= 0 for op in opcodes)
    assert set(isa.BY_NAME) == set(names) and set(isa.BY_OPCODE) == set(opcodes)
    assert all(isa.BY_OPCODE[ins.opcode] is ins and isa.BY_NAME[ins.name] is ins for ins in isa.TABLE)


def test_dispatch_keys_never_collide():
    keys = [isa.dispatch_key(ins.opcode, d) for ins in isa.TABLE for d in isa.specializations(ins)]
    assert len(set(keys)) == len(keys)


def test_any_depth_rows_have_one_key():
    for opcode in isa.ANY_DEPTH:
        keys = {isa.dispatch_key(opcode, d) for d in range(isa.MAX_DEPTH + 1)}
        assert keys == {isa.dispatch_key(opcode, 0)}


def test_math_functions_are_consistent():
    codes = [fn.code for fn in isa.FUNCTIONS]
    assert len(set(codes)) == len(codes) and len(isa.FUNCTION_BY_NAME) == len(isa.FUNCTIONS)
    assert all(fn.arity in (1, 2) for fn in isa.FUNCTIONS)


@pytest.mark.parametrize("ins", INSTRUCTIONS)
def test_specializations_match_stack_effect(ins):
    depths = isa.specializations(ins)
    expected = [d for d in range(isa.MAX_DEPTH + 1) if d >= ins.pops and d - ins.pops + ins.pushes <= isa.MAX_DEPTH]
    assert depths == ([0] if ins.opcode in isa.ANY_DEPTH else expected)
    assert depths, f"{ins.name} can run at no depth"


# ------------------------------------------------------ (a) the kernel has every case


@pytest.mark.parametrize("ins", INSTRUCTIONS)
def test_kernel_dispatches_every_specialization(ins, source, dispatch_cases):
    cases = set(dispatch_cases)
    keys = [isa.dispatch_key(ins.opcode, depth) for depth in isa.specializations(ins)]
    if ins is isa.HALT:
        # HALT is no case of its own: the dispatch's final ``else`` leaves the chunk loop too.
        assert re.search(r"\n(\s*)else:\n\1    pc = -1\n\1    break\n", source), "dispatch has no final 'else'"
        assert not cases & set(keys), "a HALT key is caught by an instruction case"
    else:
        missing = [k for k in keys if f"key == {k}:" not in source]
        assert not missing, f"{ins.name}: no dispatch case for keys {missing}"
        for depth in isa.specializations(ins):
            assert f"key == {isa.dispatch_key(ins.opcode, depth)}:  # {ins.name} @{depth}" in source


def test_kernel_has_no_other_cases(dispatch_cases):
    expected = {
        isa.dispatch_key(ins.opcode, d) for ins in isa.TABLE if ins is not isa.HALT for d in isa.specializations(ins)
    }
    assert len(dispatch_cases) == len(set(dispatch_cases)), "duplicate dispatch cases"
    assert set(dispatch_cases) == expected


# -------------------------------------------------------------- (b) Assembler builders


@pytest.mark.parametrize("ins", INSTRUCTIONS)
def test_assembler_has_builder(ins):
    asm = Assembler("x")
    builder = getattr(asm, ins.mnemonic)
    assert callable(builder)
    assert ins.name in builder.__doc__ and ins.meaning in builder.__doc__


def test_assembler_rejects_unknown_and_uppercase_names():
    asm = Assembler("x")
    with pytest.raises(AttributeError):
        asm.frobnicate
    with pytest.raises(AttributeError):
        getattr(asm, "ADD")  # builders are the lowercase mnemonics only


# ----------------------------------------- (c) minimal programs verify, (d) round trip


def minimal_program(ins: isa.Instr) -> Program:
    """The shortest sensible valid program that executes ``ins`` once."""
    asm = Assembler("x", "out")
    if ins.name in ("PARK", "PARK2", "MATH", "UNPARK"):  # the math register's sequence
        asm.load(0).const(2.0)
        (asm.park2().math("pow") if ins.name == "PARK2" else asm.park().math("exp")).unpark()
        return asm.halt().program()
    if ins.name in ("REDUCE", "NEXTCHUNK"):  # a row program: a chunk loop, then the row's sum
        asm.const(0.0).load(0).add().nextchunk(1).park().reduce("sum").unpark()
        return asm.store(1).halt().program()
    before = ins.pops + (1 if ins.operand is isa.Operand.DEPTH else 0)  # PICK/POKE need an entry to reach
    for k in range(before):
        asm.load(0, offset=k) if k % 2 else asm.const(k + 0.5)
    if ins is isa.HALT:
        return asm.halt().program()
    builder = getattr(asm, ins.mnemonic)
    if ins.operand is isa.Operand.SLOT:
        builder(1 if ins.name == "STORE" else 0)
    elif ins.operand is isa.Operand.F32:
        builder(-1.25)
    elif ins.operand is isa.Operand.DEPTH:
        builder(0)
    else:
        builder()
    for _ in range(before - ins.pops + ins.pushes):
        asm.pop()
    return asm.halt().program()


@pytest.mark.parametrize("ins", INSTRUCTIONS)
def test_minimal_program_verifies(ins):
    program = minimal_program(ins)
    assert any(op == ins.opcode for op, _ in program.code)
    depths = verify(program)
    assert len(depths) == len(program)
    for (opcode, _), depth in zip(program.code, depths):
        keys = {isa.dispatch_key(opcode, d) for d in isa.specializations(isa.BY_OPCODE[opcode])}
        assert isa.dispatch_key(opcode, depth) in keys


@pytest.mark.parametrize("ins", INSTRUCTIONS)
def test_disassembly_assembles_back(ins):
    program = minimal_program(ins)
    listing = disassemble(program)
    assert ins.mnemonic in listing
    assert assemble(listing) == program


# ---------------------------------------------------------------------- operand words


@pytest.mark.parametrize("slot", [0, 1, 7, (1 << isa.SLOT_BITS) - 1])
@pytest.mark.parametrize("offset", [0, 1, -1, 2, -2, 1000, -1000, isa.OFFSET_MIN, isa.OFFSET_MAX])
def test_slot_word_round_trip(slot, offset):
    word = isa.encode_slot(slot, offset)
    assert -(1 << 31) <= word < (1 << 31)  # fits the kernel's int32 operand
    assert isa.decode_slot(word) == (slot, offset)
    # what the kernel does with the word: low bits and arithmetic shift
    assert word & ((1 << isa.SLOT_BITS) - 1) == slot and word >> isa.SLOT_BITS == offset


@pytest.mark.parametrize(
    "slot,offset",
    [(-1, 0), (1 << isa.SLOT_BITS, 0), (0, isa.OFFSET_MAX + 1), (0, isa.OFFSET_MIN - 1)],
)
def test_slot_word_out_of_range(slot, offset):
    with pytest.raises(ValueError):
        isa.encode_slot(slot, offset)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, -1.5, 1e-30, -1e-30, 1.401298464324817e-45, 3.4028234663852886e38, math.inf, -math.inf, 0.1],
)
def test_f32_bits_round_trip(value):
    bits = isa.f32_bits(value)
    assert -(1 << 31) <= bits < (1 << 31)
    assert bits == struct.unpack("<i", struct.pack("<f", value))[0]
    back = isa.bits_f32(bits)
    assert back == struct.unpack("<f", struct.pack("<f", value))[0]  # value rounded to float32
    assert math.copysign(1.0, back) == math.copysign(1.0, value)
    assert isa.f32_bits(back) == bits


def test_f32_bits_special_patterns():
    assert isa.f32_bits(-0.0) == -(1 << 31)
    assert isa.f32_bits(0.0) == 0
    assert isa.f32_bits(math.inf) == 0x7F800000
    assert isa.f32_bits(-math.inf) == 0xFF800000 - (1 << 32)
    assert isa.f32_bits(1.0) == 0x3F800000
    assert math.isnan(isa.bits_f32(isa.f32_bits(math.nan)))
    # quiet NaNs keep their payload and sign through bits -> float -> bits
    for word in (0x7FC00001, 0x7FC12345, 0xFFC00001 - (1 << 32)):
        value = isa.bits_f32(word)
        assert math.isnan(value)
        assert isa.f32_bits(value) == word


def test_disk_cache_key_follows_the_instruction_table(monkeypatch):
    """A built kernel is cached on disk by the digest of its generated source, which the
    instruction table (and every device module) feeds: change a row, get a new key."""
    import dataclasses

    from gint.kernel import codegen, interpreter
    from gint.kernel.config import DEFAULT

    before = interpreter.ptx_cache_path((9, 0), DEFAULT)
    changed = tuple(dataclasses.replace(i, expr="a - b") if i.name == "ADD" else i for i in isa.TABLE)
    monkeypatch.setattr(isa, "TABLE", changed)
    codegen.kernel_source.cache_clear()
    try:
        after = interpreter.ptx_cache_path((9, 0), DEFAULT)
    finally:
        monkeypatch.undo()
        codegen.kernel_source.cache_clear()
    assert after != before
    assert interpreter.ptx_cache_path((9, 0), DEFAULT) == before
