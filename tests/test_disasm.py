"""Disassembler listings: what they show, that they assemble back to the identical
program (odd floats and NaN payloads included), and the assembler's errors."""

import math
import re

import pytest

from gint import isa
from gint.host.disasm import assemble, disassemble, format_operand, parse_operand
from gint.host.frontend import Assembler, bytecode, fma, maximum, minimum, where
from gint.host.program import Program
from gint.host.verifier import VerificationError, verify

OP = {ins.name: ins.opcode for ins in isa.TABLE}


@bytecode
def stencil(x, y, out):
    out.store(x.load(-2) * 0.25 + x.load(-1) * 1e-30 + x.load(0) * -0.0 + x.load(1) / y.load(3) + float("inf"))


@bytecode
def shared(x, y, o1, o2, o3):
    a = x.load() * y.load(1)
    b = x.load() - y.load(1)
    o1.store(a * a + b * b)
    o2.store(b / (b + 3.0))
    c = x.load() + 2.0
    o3.store(c * c - b)


@bytecode
def selects(a, b, c, out):
    x, y, z = a.load(), b.load(), c.load()
    out.store(where(x < b.load(-7), fma(x, y, z), maximum(minimum(x, -1.5), z)))


def _hand(*code, slots=("x", "out")) -> Program:
    return Program(tuple(code), slots)


NAN_PAYLOADS = [0x7FC00001, 0x7F800001, 0x7FFFFFFF, 0xFFC00000 - (1 << 32), 0xFF812345 - (1 << 32)]


def _const_program(bits: int) -> Program:
    return _hand((OP["CONST"], bits), (OP["STORE"], isa.encode_slot(1)), (OP["HALT"], 0))


PROGRAMS = [
    pytest.param(stencil.program, id="offsets-and-odd-floats"),
    pytest.param(shared.program, id="pick-poke"),
    pytest.param(selects.program, id="select-fma-min-max"),
    *[pytest.param(_const_program(b), id=f"nan-{b & 0xFFFFFFFF:08x}") for b in NAN_PAYLOADS],
    *[
        pytest.param(_const_program(isa.f32_bits(v)), id=f"const-{v!r}")
        for v in (1e-30, -1e-30, -0.0, 0.0, math.inf, -math.inf, 1.401298464324817e-45, 3.4028234663852886e38, 0.1)
    ],
    pytest.param(_hand((OP["HALT"], 0), slots=()), id="no-slots"),
]


@pytest.mark.parametrize("program", PROGRAMS)
def test_round_trip(program):
    listing = disassemble(program)
    again = assemble(listing)
    assert again == program
    assert again.code == program.code and again.slot_names == program.slot_names
    assert disassemble(again) == listing


def test_frontend_programs_have_what_the_round_trip_needs():
    """The programs above really contain the operands the round trip is meant to cover."""
    ops = {op for op, _ in shared.program.code}
    assert OP["PICK"] in ops and OP["POKE"] in ops
    offsets = {isa.decode_slot(arg)[1] for op, arg in stencil.program.code if op == OP["LOAD"]}
    assert {-2, -1, 0, 1, 3} <= offsets
    immediates = {ins.opcode for ins in isa.TABLE if ins.operand is isa.Operand.F32}  # CONST, ADDI, ...
    consts = {arg for op, arg in stencil.program.code if op in immediates}
    assert {isa.f32_bits(1e-30), isa.f32_bits(-0.0), isa.f32_bits(math.inf)} <= consts


@pytest.mark.parametrize("bits", NAN_PAYLOADS)
def test_nan_payload_is_written_as_bits(bits):
    listing = disassemble(_const_program(bits))
    assert f"0x{bits & 0xFFFFFFFF:08x}" in listing
    assert assemble(listing).code[0] == (OP["CONST"], bits)


def test_listing_contents():
    listing = disassemble(stencil.program)
    lines = listing.splitlines()
    assert lines[0] == ".slots x, y, out"
    depths = verify(stencil.program)
    assert len(lines) == 1 + len(stencil.program)
    for index, (line, (opcode, operand), depth) in enumerate(zip(lines[1:], stencil.program.code, depths)):
        ins = isa.BY_OPCODE[opcode]
        fields = line.split(";")[0].split()
        assert int(fields[0]) == index
        assert fields[1] == ins.mnemonic
        if ins.operand is isa.Operand.NONE:
            assert len(fields) == 2
        else:
            assert fields[2] == format_operand(ins, operand)
        after = depth - ins.pops + ins.pushes
        assert f"depth {depth} -> {after}" in line
        if ins.operand is isa.Operand.SLOT:
            assert line.rstrip().endswith(stencil.program.slot_names[isa.decode_slot(operand)[0]])
    first = lines[1]
    assert re.match(r"\s*0\s+load\s+%\d+[+-]\d+\s+; depth 0 -> 1\s+[xy]$", first), first
    assert re.search(r"\bhalt\b.*; depth (\d+) -> \1\b", lines[-1])


def test_operand_formats():
    load, const, pick = isa.BY_NAME["LOAD"], isa.BY_NAME["CONST"], isa.BY_NAME["PICK"]
    assert format_operand(load, isa.encode_slot(3)) == "%3"
    assert format_operand(load, isa.encode_slot(3, 5)) == "%3+5"
    assert format_operand(load, isa.encode_slot(2, -4)) == "%2-4"
    assert format_operand(const, isa.f32_bits(-0.0)) == "-0.0"
    assert format_operand(const, isa.f32_bits(math.inf)) == "inf"
    assert format_operand(const, isa.f32_bits(-2.5)) == "-2.5"
    assert format_operand(pick, 6) == "6"
    assert parse_operand(load, "%2-4") == isa.encode_slot(2, -4)
    assert parse_operand(const, "0xffc00000") == 0xFFC00000 - (1 << 32)
    assert parse_operand(const, "-inf") == isa.f32_bits(-math.inf)


def test_assemble_is_lenient_about_layout():
    text = """
        ; a hand-written listing
        .slots a, out
        LOAD %0        ; indices are optional
        const 2.5
        Mul
        store %1
        halt
    """
    program = assemble(text)
    asm = Assembler("a", "out").load(0).const(2.5).mul().store(1).halt()
    assert program == asm.program()


def test_disassemble_verifies_first():
    bad = _hand((OP["POP"], 0), (OP["HALT"], 0))
    with pytest.raises(VerificationError):
        disassemble(bad)


GOOD = ".slots x, out\n   0  load %0\n   1  neg\n   2  store %1\n   3  halt\n"


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        pytest.param(GOOD.replace("neg", "negate"), 3, "unknown mnemonic 'negate'", id="unknown-mnemonic"),
        pytest.param(GOOD.replace("neg", "neg 1"), 3, "takes no operand", id="operand-on-none"),
        pytest.param(GOOD.replace("halt", "halt 0"), 5, "takes no operand", id="operand-on-halt"),
        pytest.param(GOOD.replace("load %0", "load"), 2, "needs a slot operand", id="missing-slot"),
        pytest.param(GOOD.replace("neg", "const"), 3, "needs a f32 operand", id="missing-f32"),
        pytest.param(GOOD.replace("neg", "pick"), 3, "needs a depth operand", id="missing-depth"),
        pytest.param(GOOD.replace("load %0", "load 0"), 2, "bad slot operand", id="slot-without-percent"),
        pytest.param(GOOD.replace("load %0", "load %x"), 2, "bad slot operand", id="slot-not-number"),
        pytest.param(GOOD.replace("load %0", "load %0+"), 2, "bad slot operand", id="slot-dangling-sign"),
        pytest.param(GOOD.replace("load %0", "load %99"), 2, "slot 99", id="slot-too-big"),
        pytest.param(GOOD.replace("neg", "const two"), 3, "two", id="bad-float"),
        pytest.param(GOOD.replace("neg", "pick top"), 3, "top", id="bad-depth"),
        pytest.param(GOOD.replace("store %1", "store %1 %0"), 4, "expected", id="too-many-tokens"),
        pytest.param(GOOD.replace("   2  store", "   5  store"), 4, "out of sequence", id="index-skips"),
        pytest.param(GOOD.replace("   1  neg", "   0  neg"), 3, "out of sequence", id="index-repeats"),
    ],
)
def test_assemble_errors_name_the_line(text, line, fragment):
    with pytest.raises(ValueError) as info:
        assemble(text)
    message = str(info.value)
    assert message.startswith(f"line {line}:"), message
    assert fragment in message, message


def test_assemble_needs_slots_line():
    with pytest.raises(ValueError, match=r"\.slots"):
        assemble("load %0\nneg\nstore %1\nhalt\n")
    with pytest.raises(ValueError, match=r"\.slots"):
        assemble("")


def test_assembled_program_is_not_silently_verified():
    """assemble() parses; verification is separate (and catches what parsing cannot)."""
    program = assemble(".slots x\nload %3\npop\nhalt\n")
    with pytest.raises(VerificationError) as info:
        verify(program)
    assert info.value.rule == "slot" and info.value.index == 0


def test_assemble_float_beyond_float32_range_is_inf():
    """Like a float32 cast (and torch), an immediate beyond the float32 range is inf."""
    big = assemble(".slots x, out\nload %0\nconst 1e39\nmul\nstore %1\nhalt\n")
    inf = assemble(".slots x, out\nload %0\nconst inf\nmul\nstore %1\nhalt\n")
    assert big == inf


def test_assemble_float_bits_beyond_32_bits_names_the_line():
    with pytest.raises(ValueError, match=r"^line 3:"):
        assemble(".slots x, out\nload %0\nconst 0x1ffffffff\nmul\nstore %1\nhalt\n")
