"""``@bytecode`` programs against eager PyTorch on random data, and the frontend's
errors for programs it cannot express."""

import inspect

import pytest
import torch

from gint import isa
from gint.host.frontend import Assembler, Value, bytecode, fma, maximum, minimum, where
from gint.host.stackcode import StackDepthError
from gint.host.verifier import VerificationError

OP = {ins.name: ins.opcode for ins in isa.TABLE}


def randn(target, *shape):
    return torch.randn(shape or (target.numel,), device=target.device)


def empties(target, count, shape=None):
    return [torch.full(shape or (target.numel,), -123.0, device=target.device) for _ in range(count)]


def opcodes(fn) -> list[int]:
    return [op for op, _ in fn.program.code]


# ------------------------------------------------------------------- arithmetic


@bytecode
def scalars(x, o1, o2, o3, o4, o5, o6, o7):
    v = x.load()
    o1.store(2 - v)
    o2.store(1 / v)
    o3.store(v - 2)
    o4.store(v / 4)
    o5.store(3 * v + 0.5)
    o6.store(-v * True)  # bools are numbers too
    o7.store(2.5 + v * 7 - 1 / (v + 10))


def test_python_scalars_on_both_sides(target):
    x = randn(target)
    x[::11] = 0.0  # 1 / 0 = inf, 2 - 0 etc.
    outs = empties(target, 7)
    scalars(x, *outs)
    expected = [2 - x, 1 / x, x - 2, x / 4, 3 * x + 0.5, -x * 1.0, 2.5 + x * 7 - 1 / (x + 10)]
    for got, want in zip(outs, expected):
        torch.testing.assert_close(got, want)
    assert torch.isinf(outs[1][::11]).all()


@bytecode
def comparisons(x, y, o1, o2, o3, o4, o5, o6):
    a, b = x.load(), y.load()
    o1.store(a < b)
    o2.store(a <= b)
    o3.store(a > b)
    o4.store(a >= b)
    o5.store(a == b)
    o6.store(a != b)


@bytecode
def reflected(x, y, out):
    a, b = x.load(), y.load()
    out.store((0.25 > a) + (a == 0.5) * 2.0 + (1 <= b) * 4.0)  # 0.25 > a is a < 0.25


def test_comparisons_produce_zero_or_one(target):
    x, y = randn(target), randn(target)
    x[::5] = 0.5
    x[1::7] = float("nan")  # every comparison with nan is false, except !=
    y[::3] = x[::3]  # ties
    outs = empties(target, 7)
    comparisons(x, y, *outs[:6])
    reflected(x, y, outs[6])
    expected = [x < y, x <= y, x > y, x >= y, x == y, x != y]
    for got, want in zip(outs, expected):
        assert set(got.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(got, want.float())
    torch.testing.assert_close(outs[6], (x < 0.25).float() + (x == 0.5).float() * 2 + (y >= 1).float() * 4)
    assert (outs[4][::3][~torch.isnan(x[::3])] == 1).all()
    assert (outs[5][1::7] == 1).all()


@bytecode
def functions(a, b, c, o1, o2, o3, o4, o5):
    x, y, z = a.load(), b.load(), c.load()
    o1.store(where(x > y, x - y, z))
    o2.store(minimum(x, y))
    o3.store(maximum(x, 0.0))  # relu
    o4.store(fma(x, y, z))
    o5.store(where(z, minimum(2.0, y), fma(3.0, x, -1)))  # any nonzero condition selects the first


def test_where_minimum_maximum_fma(target):
    a, b, c = randn(target), randn(target), randn(target)
    c[::4] = 0.0
    outs = empties(target, 5)
    functions(a, b, c, *outs)
    torch.testing.assert_close(outs[0], torch.where(a > b, a - b, c))
    torch.testing.assert_close(outs[1], torch.minimum(a, b))
    torch.testing.assert_close(outs[2], torch.relu(a))
    torch.testing.assert_close(outs[3], (a.double() * b.double() + c.double()).float())
    torch.testing.assert_close(outs[4], torch.where(c != 0, torch.clamp(b, max=2.0), 3 * a - 1))


def test_fma_rounds_once(target):
    """a*b + c with a*b not representable: a separate multiply would round it away."""
    n = target.numel
    a = torch.full((n,), 1 + 2.0**-12, device=target.device)
    c = torch.full((n,), -(1 + 2.0**-11), device=target.device)
    out = empties(target, 1)[0]

    @bytecode
    def fused(x, z, o):
        o.store(fma(x.load(), x.load(), z.load()))

    fused(a, c, out)
    assert (out == 2.0**-24).all()  # exact: (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24; unfused gives 0


@bytecode
def nan_minmax(a, b, o1, o2, o3, o4):
    x, y = a.load(), b.load()
    o1.store(minimum(x, y))
    o2.store(maximum(x, y))
    o3.store(minimum(y, x))
    o4.store(maximum(y, x))


def test_minimum_maximum_propagate_nan(target):
    a, b = randn(target), randn(target)
    a[::3] = float("nan")
    b[1::5] = float("nan")
    b[::7] = a[::7]
    outs = empties(target, 4)
    nan_minmax(a, b, *outs)
    for got, want in zip(outs, [torch.minimum(a, b), torch.maximum(a, b), torch.minimum(b, a), torch.maximum(b, a)]):
        torch.testing.assert_close(got, want, equal_nan=True)
        assert torch.equal(torch.isnan(got), torch.isnan(a) | torch.isnan(b))


# ----------------------------------------------------------- sharing and the stack


@bytecode
def shared_stores(a, b, c, o1, o2, o3, o4):
    ab = a.load() * b.load()
    t = ab + c.load()
    o1.store(t)
    o2.store(ab - c.load())
    o3.store(t * t / (ab + 1.0))
    o4.store(ab)


def test_multiple_stores_from_shared_subexpressions(target):
    a, b, c = randn(target), randn(target), randn(target)
    outs = empties(target, 4)
    shared_stores(a, b, c, *outs)
    ab = a * b
    for got, want in zip(outs, [ab + c, ab - c, (ab + c) * (ab + c) / (ab + 1), ab]):
        torch.testing.assert_close(got, want)
    # shared values are computed once: one MUL for a*b (plus t*t), not one per use
    assert opcodes(shared_stores).count(OP["MUL"]) == 2
    assert opcodes(shared_stores).count(OP["LOAD"]) == 3


@bytecode
def reuse(x, y, o1, o2, o3, o4):
    a = x.load() * y.load()
    b = x.load() - y.load()
    o1.store(a * a + b * b)  # a and b held
    o2.store(b / (b + 3.0))  # a is dead from here
    c = x.load() + 2.0
    d = c * c - b  # c held while b still is
    o3.store(d)
    o4.store(d * c + (c - a * 0.0 + b) / (d * d + 1.0))


def test_deep_program_reuses_stack_positions(target):
    x, y = randn(target, target.rows, target.cols), randn(target, target.rows, target.cols)
    outs = empties(target, 4, (target.rows, target.cols))
    reuse(x, y, *outs)
    a, b = x * y, x - y
    c = x + 2
    d = c * c - b
    expected = [a * a + b * b, b / (b + 3), d, d * c + (c - a * 0.0 + b) / (d * d + 1)]
    for got, want in zip(outs, expected):
        torch.testing.assert_close(got, want)
    code = opcodes(reuse)
    assert OP["POKE"] in code and OP["PICK"] in code
    assert max(reuse.depths) <= isa.MAX_DEPTH


def test_chain_of_shared_values_stays_shallow(target):
    """Each squaring uses its operand twice; a value dead after one step frees its entry."""

    @bytecode
    def power(x, out):
        v = x.load()
        for _ in range(10):
            v = minimum(v * v, 2.0) - 0.5  # stays bounded
        out.store(v)

    x = randn(target)
    out = empties(target, 1)[0]
    power(x, out)
    v = x
    for _ in range(10):
        v = torch.clamp(v * v, max=2.0) - 0.5
    torch.testing.assert_close(out, v)
    assert max(power.depths) <= 4


def test_tree_of_128_loads_fits_exactly(target):
    """A balanced tree needs log2(leaves) + 1 entries: 128 distinct loads need all 8."""

    @bytecode
    def tree(x, out):
        values = [x.load(k) for k in range(128)]
        while len(values) > 1:
            values = [p - q * 0.5 for p, q in zip(values[::2], values[1::2])]
        out.store(values[0])

    assert max(d + 1 for d in tree.depths) >= isa.MAX_DEPTH  # it really uses the whole stack
    x = randn(target, target.rows, 200)
    out = empties(target, 1, x.shape)[0]
    tree(x, out)
    padded = torch.nn.functional.pad(x, (0, 127))
    values = [padded[:, k : k + 200] for k in range(128)]
    while len(values) > 1:
        values = [p - q * 0.5 for p, q in zip(values[::2], values[1::2])]
    torch.testing.assert_close(out, values[0])


def test_store_of_a_constant(target):
    @bytecode
    def fill(out, flag):
        out.store(3.25)
        flag.store(True)

    out, flag = empties(target, 2)
    fill(out, flag)
    assert (out == 3.25).all() and (flag == 1.0).all()


def test_in_place_store(target):
    @bytecode
    def halve(x):
        x.store(x.load() * 0.5)

    x = randn(target)
    before = x.clone()
    halve(x)
    torch.testing.assert_close(x, before * 0.5)


def test_program_and_listing_attributes():
    assert scalars.program.slot_names == ("x", "o1", "o2", "o3", "o4", "o5", "o6", "o7")
    assert scalars.__name__ == "scalars"
    assert "store" in scalars.listing() and scalars.listing().startswith(".slots x, o1")
    assert list(inspect.signature(scalars).parameters) == list(scalars.program.slot_names)


# ----------------------------------------------------------------------- errors


def test_load_after_store_is_an_error():
    with pytest.raises(ValueError, match="loaded after it was stored"):

        @bytecode
        def bad(x, out):
            x.store(x.load() + 1.0)
            out.store(x.load())


def test_load_before_store_then_use_after_is_fine(target):
    @bytecode
    def swap_in_place(x, y):
        old = x.load()
        x.store(y.load())
        y.store(old)

    x, y = randn(target), randn(target)
    x0, y0 = x.clone(), y.clone()
    swap_in_place(x, y)
    torch.testing.assert_close(x, y0)
    torch.testing.assert_close(y, x0)


def test_storing_nothing_is_an_error():
    with pytest.raises(ValueError, match="stores nothing"):

        @bytecode
        def nothing(x, out):
            x.load() + 1.0


def test_too_many_parameters():
    names = ", ".join(f"t{i}" for i in range(isa.MAX_SLOTS + 1))
    namespace = {}
    exec(f"def wide({names}):\n    t0.store(t1.load())\n", namespace)
    with pytest.raises(ValueError, match=f"at most {isa.MAX_SLOTS}"):
        bytecode(namespace["wide"])
    exec(f"def widest({names[: names.rindex(',')]}):\n    t0.store(t1.load())\n", namespace)
    assert bytecode(namespace["widest"]).program.n_slots == isa.MAX_SLOTS


def test_traced_value_has_no_truth_value():
    with pytest.raises(TypeError, match="where"):

        @bytecode
        def branchy(x, out):
            v = x.load()
            if v > 0:
                out.store(v)
            else:
                out.store(-v)

    with pytest.raises(TypeError):

        @bytecode
        def chained(x, out):
            out.store(0 < x.load() < 1)  # a chained comparison asks for bool()


def test_traced_values_are_not_hashable():
    with pytest.raises(TypeError):

        @bytecode
        def keyed(x, out):
            out.store({x.load(): 1}[x.load()])


def test_non_numbers_are_rejected():
    with pytest.raises(TypeError, match="str"):

        @bytecode
        def stringy(x, out):
            out.store(x.load() + "1")

    with pytest.raises(TypeError, match="list"):

        @bytecode
        def listy(x, out):
            out.store(where(x.load(), [1.0], 0.0))


def test_store_at_an_offset(target):
    """A slot that is only written may be written at an offset (elements shifted along the row)."""

    @bytecode
    def shifted(x, out):
        out.store(x.load() * 2.0, offset=1)

    x = randn(target, target.rows, target.cols)
    out = torch.zeros_like(x)
    shifted(x, out)
    expected = torch.zeros_like(x)
    expected[:, 1:] = x[:, :-1] * 2
    torch.testing.assert_close(out, expected)


def test_stores_at_two_offsets_fail_verification():
    with pytest.raises(VerificationError) as info:

        @bytecode
        def twice(x, out):
            out.store(x.load(), offset=1)
            out.store(x.load(1), offset=0)

    assert info.value.rule == "aliasing"


def test_right_leaning_chain_is_evaluated_right_first(target):
    """x0 / (x1 - (x2 / (x3 - ...))) over 12 distinct loads: evaluating the deep operand first
    (with a SWAP for the non-commutative operators) keeps it shallow, so it does not need 12 entries."""

    @bytecode
    def chain(x, out):
        value = x.load(11)
        for k in reversed(range(11)):
            value = x.load(k) / value if k % 2 == 0 else x.load(k) - value
        out.store(value)

    assert max(chain.depths) <= isa.MAX_DEPTH
    assert OP["SWAP"] in opcodes(chain)
    x = randn(target, target.rows, target.cols).abs() + 1.0
    out = empties(target, 1, x.shape)[0]
    chain(x, out)
    padded = torch.nn.functional.pad(x, (0, 11))
    value = padded[:, 11 : 11 + target.cols]
    for k in reversed(range(11)):
        column = padded[:, k : k + target.cols]
        value = column / value if k % 2 == 0 else column - value
    torch.testing.assert_close(out, value, equal_nan=True)  # 0 / 0 past the row's end


def test_too_deep_expression_raises_stack_depth_error():
    """256 distinct leaves in a balanced tree need 9 entries whatever the order."""
    with pytest.raises(StackDepthError, match=str(isa.MAX_DEPTH)):

        @bytecode
        def tree(x, out):
            values = [x.load(k) for k in range(256)]
            while len(values) > 1:
                values = [p / q for p, q in zip(values[::2], values[1::2])]
            out.store(values[0])


def test_values_shared_by_two_stores_up_to_the_limit(target):
    """Six loads, each used by two stores, stay held across the first store."""

    @bytecode
    def two_folds(x, o1, o2):
        values = [x.load(k) for k in range(isa.MAX_DEPTH - 2)]
        total, product = values[0], values[0]
        for v in values[1:]:
            total, product = total - v, product / v
        o1.store(total)
        o2.store(product)

    assert max(two_folds.depths) <= isa.MAX_DEPTH
    assert [op for op, _ in two_folds.program.code].count(OP["LOAD"]) == isa.MAX_DEPTH - 2  # each loaded once
    x = randn(target, target.rows, target.cols)
    o1, o2 = empties(target, 2, x.shape)
    two_folds(x, o1, o2)
    padded = torch.nn.functional.pad(x, (0, isa.MAX_DEPTH))
    values = [padded[:, k : k + target.cols] for k in range(isa.MAX_DEPTH - 2)]
    total, product = values[0], values[0]
    for v in values[1:]:
        total, product = total - v, product / v
    torch.testing.assert_close(o1, total)
    torch.testing.assert_close(o2, product)


def test_value_repr_and_assembler_chain():
    v = Value.__new__(Value)
    from gint.host import expr

    v.node = expr.load(0)
    assert repr(v) == "Value(LOAD)"
    asm = Assembler("x", "out")
    assert asm.load(0).neg().store(1).halt() is asm


# ------------------------------------------- bugs found by these tests, fixed


def test_python_constant_beyond_float32_range(target):
    @bytecode
    def huge(x, out):
        out.store(x.load() * 1e39)

    x = randn(target)
    out = empties(target, 1)[0]
    huge(x, out)
    torch.testing.assert_close(out, x * 1e39, equal_nan=True)  # +-inf (nan where x == 0), as in torch


def test_sum_of_squares_fits(target):
    @bytecode
    def sum_of_squares(x, out):
        total = 0.0
        for k in range(6):
            v = x.load(k)
            total = total + v * v
        out.store(total)

    assert max(sum_of_squares.depths) <= isa.MAX_DEPTH
    x = randn(target, target.rows, target.cols)
    out = empties(target, 1, x.shape)[0]
    sum_of_squares(x, out)
    padded = torch.nn.functional.pad(x, (0, 6))
    torch.testing.assert_close(out, sum(padded[:, k : k + target.cols] ** 2 for k in range(6)))
