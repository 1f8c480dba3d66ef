"""One hand-built bad program per verifier rule: each must fail with exactly that rule
at exactly the offending instruction, and never reach the kernel."""

import pytest
import torch

import gint
from gint import isa
from gint.host import executor
from gint.host.program import Program
from gint.host.verifier import MAX_INSTRUCTIONS, RULES, VerificationError, check_table, verify

OP = {ins.name: ins.opcode for ins in isa.TABLE}
ONE = isa.f32_bits(1.0)


def op(name: str, operand: int = 0) -> tuple[int, int]:
    return OP[name], operand


def slot(s: int, offset: int = 0) -> int:
    return isa.encode_slot(s, offset)


HALT = op("HALT")
C1 = op("CONST", ONE)


def prog(*code, slots=("x", "out")) -> Program:
    return Program(tuple(code), tuple(slots))


# (rule, program, expected index, dtypes passed to verify or None)
CASES = [
    # -- empty / length / slots: whole-program rules, index None
    pytest.param("empty", prog(), None, None, id="empty"),
    pytest.param(
        "length", prog(*([C1, op("POP")] * (MAX_INSTRUCTIONS // 2)), HALT), None, None, id="length-one-too-many"
    ),
    pytest.param("slots", prog(HALT, slots=[f"t{i}" for i in range(isa.MAX_SLOTS + 1)]), None, None, id="slots"),
    # -- opcode
    pytest.param("opcode", prog(C1, (max(OP.values()) + 1, 0), op("POP"), HALT), 1, None, id="opcode-unknown"),
    pytest.param("opcode", prog(C1, op("POP"), (-1, 0), HALT), 2, None, id="opcode-negative"),
    # -- operand
    pytest.param("operand", prog(C1, op("DUP", 1), op("POP"), op("POP"), HALT), 1, None, id="operand-on-none"),
    pytest.param("operand", prog(C1, op("POP"), op("HALT", 7)), 2, None, id="operand-on-halt"),
    pytest.param("operand", prog(C1, C1, op("PICK", -1), HALT), 2, None, id="operand-negative-pick"),
    pytest.param("operand", prog(C1, C1, op("POKE", -1), HALT), 2, None, id="operand-negative-poke"),
    pytest.param("operand", prog(op("CONST", 1 << 31), op("POP"), HALT), 0, None, id="operand-not-int32"),
    pytest.param("operand", prog(op("CONST", -(1 << 31) - 1), op("POP"), HALT), 0, None, id="operand-below-int32"),
    # -- slot
    pytest.param("slot", prog(op("LOAD", slot(2)), op("STORE", slot(1)), HALT), 0, None, id="slot-load"),
    pytest.param("slot", prog(op("LOAD", slot(0)), op("STORE", slot(15)), HALT), 1, None, id="slot-store"),
    # -- underflow
    pytest.param("underflow", prog(C1, op("ADD"), HALT), 1, None, id="underflow-add"),
    pytest.param("underflow", prog(op("POP"), HALT), 0, None, id="underflow-empty-pop"),
    pytest.param("underflow", prog(C1, C1, op("SELECT"), HALT), 2, None, id="underflow-select"),
    pytest.param("underflow", prog(C1, C1, op("STORE", slot(1)), op("STORE", slot(1)), op("STORE", slot(1)), HALT),
                 4, None, id="underflow-store"),
    pytest.param("underflow", prog(C1, C1, op("PICK", 2), HALT), 2, None, id="underflow-pick-reach"),
    pytest.param("underflow", prog(C1, C1, op("POKE", 1), HALT), 2, None, id="underflow-poke-reach"),
    # -- overflow
    pytest.param("overflow", prog(*[C1] * (isa.MAX_DEPTH + 1), HALT), isa.MAX_DEPTH, None, id="overflow-const"),
    pytest.param(
        "overflow", prog(*[C1] * isa.MAX_DEPTH, op("OVER"), HALT), isa.MAX_DEPTH, None, id="overflow-over"
    ),
    pytest.param(
        "overflow", prog(*[C1] * isa.MAX_DEPTH, op("PICK", 3), HALT), isa.MAX_DEPTH, None, id="overflow-pick"
    ),
    # -- halt, three ways
    pytest.param("halt", prog(C1, op("POP")), 1, None, id="halt-missing"),
    pytest.param("halt", prog(C1, op("STORE", slot(1))), 1, None, id="halt-missing-after-store"),
    pytest.param("halt", prog(HALT, C1, op("POP"), HALT), 0, None, id="halt-not-last"),
    pytest.param("halt", prog(HALT, HALT), 0, None, id="halt-twice"),
    # -- aliasing: a stored slot touched at an offset
    pytest.param(
        "aliasing", prog(op("LOAD", slot(1, 1)), op("STORE", slot(1)), HALT), 0, None, id="aliasing-load-offset"
    ),
    pytest.param(
        "aliasing",
        prog(op("LOAD", slot(0)), op("STORE", slot(1, -1)), op("LOAD", slot(0)), op("STORE", slot(1)), HALT),
        3, None, id="aliasing-two-store-offsets"
    ),
    pytest.param(
        "aliasing",
        prog(op("LOAD", slot(0)), op("STORE", slot(1)), op("LOAD", slot(1, -2)), op("STORE", slot(0)), HALT),
        2, None, id="aliasing-later-load",
    ),
    # -- table: dtypes given with the program
    pytest.param("table", prog(op("LOAD", slot(0)), op("STORE", slot(1)), HALT), None, [torch.float32],
                 id="table-count"),
    pytest.param("table", prog(op("LOAD", slot(0)), op("STORE", slot(1)), HALT), None,
                 [torch.float32, torch.float64], id="table-dtype"),
    # -- math: the math registers' sequence
    pytest.param("math", prog(C1, op("PARK"), HALT), 2, None, id="math-halt-while-parked"),
    pytest.param("math", prog(C1, op("PARK"), op("CONST", ONE), op("MATH", 0), op("UNPARK"), HALT), 2, None,
                 id="math-other-instruction-while-parked"),
    pytest.param("math", prog(C1, op("MATH", 0), HALT), 1, None, id="math-function-with-nothing-parked"),
    pytest.param("math", prog(C1, op("UNPARK"), HALT), 1, None, id="math-unpark-with-nothing-parked"),
    pytest.param("math", prog(C1, C1, op("PARK2"), op("MATH", 0), op("UNPARK"), HALT), 3, None,
                 id="math-unary-function-on-two-values"),
    pytest.param("math", prog(C1, op("PARK"), op("MATH", isa.FUNCTION_BY_NAME["pow"].code), op("UNPARK"), HALT), 2,
                 None, id="math-binary-function-on-one-value"),
    pytest.param("math", prog(C1, C1, op("PARK"), op("PARK"), HALT), 3, None, id="math-park-twice"),
    pytest.param("operand", prog(C1, op("PARK"), op("MATH", 999), op("UNPARK"), HALT), 2, None,
                 id="operand-unknown-math-function"),
    # -- row programs: REDUCE on the math register, NEXTCHUNK's backward branch
    pytest.param("math", prog(C1, op("REDUCE", 0), HALT), 1, None, id="math-reduce-with-nothing-parked"),
    pytest.param("math", prog(C1, C1, op("PARK2"), op("REDUCE", 0), op("UNPARK"), HALT), 3, None,
                 id="math-reduce-on-two-values"),
    pytest.param("operand", prog(C1, op("PARK"), op("REDUCE", 9), op("UNPARK"), HALT), 2, None,
                 id="operand-unknown-reduction"),
    pytest.param("branch", prog(C1, op("NEXTCHUNK", 3), op("POP"), HALT), 1, None, id="branch-forward"),
    pytest.param("branch", prog(C1, op("NEXTCHUNK", 1), op("POP"), HALT), 1, None, id="branch-to-itself"),
    pytest.param("branch", prog(C1, C1, op("NEXTCHUNK", 1), op("POP"), op("POP"), HALT), 2, None,
                 id="branch-depth-differs"),
    pytest.param("branch", prog(C1, op("POP"), op("NEXTCHUNK", 0), C1, op("POP"), op("NEXTCHUNK", 0), HALT), 5, None,
                 id="branch-into-an-earlier-loop"),
    pytest.param("branch", prog(C1, op("PARK"), op("UNPARK"), op("NEXTCHUNK", 2), op("POP"), HALT), 3, None,
                 id="branch-into-parked-code"),
    pytest.param("branch", prog(C1, op("NEXTCHUNK", -1), op("POP"), HALT), 1, None, id="branch-negative"),
]  # fmt: skip


def counts() -> dict[str, int]:
    """gint's event counters (``gint.counters()``; ``gint.counters.snapshot()`` before the rename)."""
    counters = gint.counters
    return counters() if callable(counters) else counters.snapshot()


def _rule(param) -> str:
    return param.values[0]


@pytest.mark.parametrize("rule,program,index,dtypes", CASES)
def test_rule(rule, program, index, dtypes):
    with pytest.raises(VerificationError) as info:
        verify(program, dtypes)
    error = info.value
    assert error.rule == rule, str(error)
    assert error.index == index, str(error)
    assert isinstance(error, ValueError)
    text = str(error)
    assert f"'{rule}'" in text and RULES[rule] in text
    assert ("program" if index is None else f"instruction {index}") in text


def test_every_rule_is_tested():
    assert {_rule(case) for case in CASES} == set(RULES)


def test_halt_is_tested_several_ways():
    ids = {case.id for case in CASES if _rule(case) == "halt"}
    assert {"halt-missing", "halt-not-last"} <= ids


# --------------------------------------------------------------- the valid neighbours


@pytest.mark.parametrize(
    "program",
    [
        pytest.param(prog(HALT, slots=()), id="just-halt"),
        pytest.param(prog(C1, C1, HALT), id="halt-drops-what-is-left"),
        pytest.param(prog(*([C1, op("NEG")] * 1), op("POP"), HALT), id="const-neg"),
        pytest.param(prog(*[C1] * isa.MAX_DEPTH, *[op("POP")] * isa.MAX_DEPTH, HALT), id="full-stack"),
        pytest.param(prog(C1, C1, op("PICK", 1), op("POKE", 1), op("POP"), op("POP"), HALT), id="pick-poke-reach"),
        pytest.param(prog(HALT, slots=[f"t{i}" for i in range(isa.MAX_SLOTS)]), id="max-slots"),
        pytest.param(prog(op("LOAD", slot(0, -3)), op("LOAD", slot(1)), op("ADD"), op("STORE", slot(1)), HALT),
                     id="in-place-with-offset-elsewhere"),
        pytest.param(prog(op("CONST", -(1 << 31)), op("CONST", (1 << 31) - 1), op("POP"), op("POP"), HALT),
                     id="int32-extremes"),
    ],
)  # fmt: skip
def test_valid_programs_pass(program):
    depths = verify(program)
    assert depths[0] == 0 and len(depths) == len(program)


def test_depths_are_the_stack_depth_before_each_instruction():
    program = prog(
        op("LOAD", slot(0)), C1, op("OVER"), op("ROT"), op("FMA"), op("DUP"), op("POKE", 0), op("STORE", slot(1)), HALT
    )
    assert verify(program) == [0, 1, 2, 3, 3, 1, 2, 1, 0]


def test_longest_program_passes():
    middle = MAX_INSTRUCTIONS - 3
    program = prog(C1, *[op("NEG")] * middle, op("POP"), HALT)
    assert len(program) == MAX_INSTRUCTIONS
    assert len(verify(program)) == MAX_INSTRUCTIONS


def test_check_table_accepts_every_supported_dtype():
    from gint import abi

    program = prog(HALT, slots=[f"t{i}" for i in range(len(abi.DTYPE_CODE))])
    check_table(program, list(abi.DTYPE_CODE))
    verify(program, list(abi.DTYPE_CODE))


# ------------------------------------------------------- bad programs never launch


@pytest.mark.parametrize(
    "rule,program,index,dtypes", [case for case in CASES if _rule(case) not in ("table", "length")]
)
def test_bad_program_never_reaches_the_kernel(monkeypatch, target, rule, program, index, dtypes):
    def no_launch(*args, **kwargs):
        raise AssertionError("a program that fails verification was launched")

    monkeypatch.setattr(executor, "_launch_simulated", no_launch)
    monkeypatch.setattr(executor.Executable, "launch", no_launch)
    before = counts()
    tensors = [torch.randn(target.numel, device=target.device) for _ in program.slot_names]
    saved = [t.clone() for t in tensors]
    with pytest.raises(VerificationError) as info:
        executor.run(program, tensors)
    assert info.value.rule == rule and info.value.index == index
    assert program not in executor._executables  # a failed program is not cached as runnable
    after = counts()
    assert after["launches"] == before["launches"]
    assert after["programs_built"] == before["programs_built"]
    for t, s in zip(tensors, saved):
        torch.testing.assert_close(t, s)
