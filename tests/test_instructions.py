"""Every instruction at every stack depth the kernel specializes it for, against the
eager reference machine (gint.fuzz.reference), on random data."""

import pytest
import torch

from gint import isa
from gint.host import executor, expr
from gint.host.expr import EXPANSIONS
from gint.host.frontend import Assembler
from gint.fuzz.reference import COMPUTE, COMPUTE_IMMEDIATE, MATH, execute

N_INPUTS = 4


def _push_distinct(asm: Assembler, count: int) -> None:
    """Push ``count`` different values: input j % 4 at row offset j // 4."""
    for j in range(count):
        asm.load(j % N_INPUTS, offset=j // N_INPUTS)


def _drain(asm: Assembler, depth: int) -> None:
    """Store up to three top entries to outputs 1..3, fold the rest into output 0."""
    for slot in (N_INPUTS + 1, N_INPUTS + 2, N_INPUTS + 3):
        if depth > 1:
            asm.store(slot)
            depth -= 1
    while depth > 1:  # r = r_below * 3 + top: any misplaced entry changes the result
        asm.swap().const(3.0).mul().add()
        depth -= 1
    if depth == 1:
        asm.store(N_INPUTS)


MATH_ROWS = ("PARK", "PARK2", "MATH", "UNPARK")


def _cases():
    for ins in isa.TABLE:
        if ins.name in ("HALT", "STORE", "MATH", "REDUCE"):  # test_math_function, test_reduce
            continue
        for depth in isa.specializations(ins):
            if ins.operand is isa.Operand.DEPTH:
                reach = depth - ins.pops
                for n in range(reach):
                    yield pytest.param(ins.name, depth, n, id=f"{ins.name}@{depth}-{n}")
            elif depth >= ins.pops:
                yield pytest.param(ins.name, depth, None, id=f"{ins.name}@{depth}")


def _math_program(name: str, depth: int, function: str | None = None) -> Assembler:
    """PARK/PARK2/UNPARK at ``depth`` (or a function at ``depth``) inside a math sequence."""
    asm = Assembler(*[f"x{i}" for i in range(N_INPUTS)], "o0", "o1", "o2", "o3")
    binary = name == "PARK2" or (function is not None and isa.FUNCTION_BY_NAME[function].arity == 2)
    _push_distinct(asm, depth + 1 if name == "UNPARK" else depth)
    asm.park2() if binary else asm.park()
    asm.math(function or ("atan2" if binary else "sin")).unpark()
    _drain(asm, depth - (2 if binary else 1) + 1 if name != "UNPARK" else depth + 1)
    return asm.halt()


def _program(name: str, depth: int, operand) -> Assembler:
    if name in MATH_ROWS:
        return _math_program(name, depth)
    asm = Assembler(*[f"x{i}" for i in range(N_INPUTS)], "o0", "o1", "o2", "o3")
    if name == "NEXTCHUNK":  # a row program whose loop body stores three values per element
        _push_distinct(asm, 3)
        _drain(asm, 3)
        return asm.nextchunk(0).halt()
    _push_distinct(asm, depth)
    ins = isa.BY_NAME[name]
    if ins.operand is isa.Operand.SLOT:
        getattr(asm, ins.mnemonic)(1, offset=-1)
    elif ins.operand is isa.Operand.F32:
        getattr(asm, ins.mnemonic)(-1.25)
    elif ins.operand is isa.Operand.DEPTH:
        getattr(asm, ins.mnemonic)(operand)
    else:
        getattr(asm, ins.mnemonic)()
    _drain(asm, depth - ins.pops + ins.pushes)
    if ins.opcode in isa.ROW_ONLY:
        asm.nextchunk(0)  # a row program: the whole program is the loop over the row's chunks
    return asm.halt()


def _inputs(target, shape):
    x = [torch.randn(shape, device=target.device) for _ in range(N_INPUTS)]
    x[1].view(-1)[::3] = x[0].view(-1)[::3]  # equal operands for comparisons and MIN/MAX ties
    x[2].view(-1)[::7] = float("nan")
    x[3].view(-1)[::5] = 0.0  # SELECT conditions and x / 0
    outs = [torch.full(shape, -7.0, device=target.device) for _ in range(4)]
    return x + outs


@pytest.mark.parametrize("name,depth,operand", list(_cases()))
def test_instruction_at_depth(target, name, depth, operand):
    program = _program(name, depth, operand).program()
    tensors = _inputs(target, (target.rows, target.cols))
    expected = execute(program, [t.cpu() for t in tensors])
    executor.run(program, tensors)
    for got, want in zip(tensors, expected):
        torch.testing.assert_close(got.cpu(), want, equal_nan=True)


@pytest.mark.parametrize("function", [fn.name for fn in isa.FUNCTIONS])
def test_math_function(target, function):
    program = _math_program("MATH", 3, function).program()
    tensors = _inputs(target, (target.rows, target.cols))
    tensors[0].view(-1)[::4] *= 40.0  # large arguments: overflow, saturation, range reduction
    expected = execute(program, [t.cpu() for t in tensors])
    executor.run(program, tensors)
    for got, want in zip(tensors, expected):
        torch.testing.assert_close(got.cpu(), want, equal_nan=True, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("function,name", sorted(isa.DIRECT_FUNCTIONS.items()))
def test_direct_function_matches_math(target, function, name):
    """A function's own instruction gives bit for bit what MATH gives (overflow, underflow
    and nan included), and expressions use it."""
    assert expr.math(function, expr.load(0)).op == name
    asm = Assembler(*[f"x{i}" for i in range(N_INPUTS)], "o0", "o1", "o2", "o3")
    asm.load(0).pick(0).pick(0)  # the instruction at depth 3, MATH beside it
    getattr(asm, name.lower())().store(N_INPUTS)
    asm.park().math(function).unpark().store(N_INPUTS + 1)
    program = asm.halt().program()
    tensors = _inputs(target, (target.rows, target.cols))
    tensors[0].view(-1)[::4] *= 30.0  # large arguments
    tensors[0].view(-1)[1::9] = float("nan")
    tensors[0].view(-1)[:4] = torch.tensor([100.0, -120.0, 88.5, -104.0])  # beyond float32's range both ways
    executor.run(program, tensors)
    torch.testing.assert_close(tensors[N_INPUTS], tensors[N_INPUTS + 1], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(
        tensors[N_INPUTS].cpu(), MATH[function](tensors[0].cpu()), equal_nan=True, rtol=2e-6, atol=1e-6
    )


@pytest.mark.parametrize("function", sorted(EXPANSIONS))
def test_expansion_matches_math(target, function):
    """A function built from other instructions gives bit for bit what MATH gives."""
    from gint.host import rowcode
    from gint.host.program import Program
    from gint.host.verifier import verify

    x = expr.load(0)
    program = Program(tuple(rowcode.schedule_any([expr.Store(1, expr.math(function, x))])), ("x", "out"))
    verify(program)
    assert isa.BY_NAME["MATH"].opcode not in {opcode for opcode, _ in program.code}
    reference = Assembler("x", "out").load(0).park().math(function).unpark().store(1).halt().program()
    inputs = torch.randn(target.rows, target.cols, device=target.device) * 30
    inputs.view(-1)[:5] = torch.tensor([100.0, -120.0, 0.0, float("inf"), float("nan")])
    got, want = torch.empty_like(inputs), torch.empty_like(inputs)
    executor.run(program, [inputs, got])
    executor.run(reference, [inputs, want])
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    finite = torch.isfinite(inputs).cpu()  # torch's own gelu(inf) is nan
    torch.testing.assert_close(got.cpu()[finite], MATH[function](inputs.cpu())[finite], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", [r.name for r in isa.REDUCTIONS])
def test_reduce(target, reduction):
    """A row program: fold x0 into an accumulator over the row's chunks, REDUCE it across
    the warp, then add it to every element of x1 (outputs: o0 full, o1 per row)."""
    info = isa.REDUCTION_BY_NAME[reduction]
    asm = Assembler(*[f"x{i}" for i in range(N_INPUTS)], "o0", "o1")
    asm.const(info.identity)
    asm.load(0).rowmask(info.identity)
    getattr(asm, info.combine.lower())()
    asm.nextchunk(1)
    asm.park().reduce(reduction).unpark()
    asm.dup().store(N_INPUTS + 1)
    asm.load(1).pick(1).add().store(N_INPUTS)
    asm.nextchunk(len(asm.code) - 4)
    program = asm.halt().program()
    shape = (target.rows, target.cols)
    tensors = _inputs(target, shape)[: N_INPUTS + 1] + [torch.zeros(target.rows, 1, device=target.device)]
    if reduction == "prod":  # a product of thousands of values near 1 stays finite
        tensors[0] = 1.0 + 0.01 * tensors[0]
    tensors[0].view(-1)[5] = float("nan") if reduction in ("max", "min") else tensors[0].view(-1)[5]
    expected = execute(program, [t.cpu() for t in tensors])
    executor.run(program, tensors)
    for got, want in zip(tensors, expected):
        torch.testing.assert_close(got.cpu(), want, equal_nan=True, rtol=1e-4, atol=1e-4)  # another summation order


def test_every_computed_instruction_has_a_reference():
    computed = {ins.name for ins in isa.TABLE if ins.expr is not None}
    assert computed == set(COMPUTE) | set(COMPUTE_IMMEDIATE)
    assert {fn.name for fn in isa.FUNCTIONS} == set(MATH)


@pytest.mark.parametrize(
    "initial,move,operand,final",
    [
        ("a", "dup", None, "aa"),
        ("ab", "pop", None, "a"),
        ("ab", "swap", None, "ba"),
        ("ab", "over", None, "aba"),
        ("abc", "rot", None, "bca"),
        ("abc", "pick", 2, "abca"),
        ("abc", "poke", 1, "cb"),
    ],
)
def test_stack_moves_by_hand(target, initial, move, operand, final):
    """Stack moves checked against hand-written expectations, not the table's effects."""
    asm = Assembler("a", "b", "c", "o0", "o1", "o2", "o3")
    for name in initial:
        asm.load("abc".index(name))
    getattr(asm, move)(*([] if operand is None else [operand]))
    for k in range(len(final)):
        asm.store(3 + k)  # top first
    asm.halt()
    inputs = {name: torch.randn(target.numel, device=target.device) for name in "abc"}
    outs = [torch.zeros(target.numel, device=target.device) for _ in range(4)]
    executor.run(asm.program(), [inputs["a"], inputs["b"], inputs["c"], *outs])
    for k, name in enumerate(reversed(final)):
        torch.testing.assert_close(outs[k], inputs[name])
