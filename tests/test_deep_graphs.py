"""Deep expressions compile (issue 17): no pass recurses as deep as the graph, and
expression nodes are hash-consed, so equal DAGs are one object. On main 4e310d2 a chain
of 320 operators overflowed Python's stack in the scheduler (the graph silently ran
eagerly) and comparing two fresh 22-deep SiLU chains took 8.7 s."""

import copy
import pickle

import torch

import gint
from gint.conductor import register_backend
from gint.host import expr, stackcode

register_backend()


def _square_tower(depth: int) -> expr.Node:
    x = expr.load(0)
    for _ in range(depth):
        x = expr.apply("MUL", x, x)  # each level shares its operand: 2**depth paths
    return x


def test_equal_expressions_are_one_object():
    a, b = _square_tower(80), _square_tower(80)
    assert a is b and a == b and hash(a) == hash(b)
    assert _square_tower(79) != a
    assert copy.deepcopy(a) is a and pickle.loads(pickle.dumps(a)) is a


def test_a_node_cannot_be_changed():
    node = expr.load(0)
    try:
        node.op = "CONST"
    except AttributeError:
        pass
    else:
        raise AssertionError("a Node was mutated")


def test_a_chain_deeper_than_pythons_stack_schedules():
    x, y = expr.load(0), expr.load(1)
    t = x
    for i in range(3000):  # ~3 frames per level used to overflow at ~330
        t = expr.apply("ADD", expr.apply("MUL", t, expr.const(0.5)), y) if i % 2 else expr.apply("SUB", t, y)
    code = stackcode.schedule([expr.Store(2, t)])
    assert len(code) > 3000
    assert stackcode.zero_outside_row(t) is True  # loads, finite constants, +, -, *
    assert stackcode.zero_outside_row(expr.apply("EXP", t)) is False
    assert "..." in repr(t)  # bounded, not 3000 levels


def test_a_400_op_chain_compiles_into_one_gint_subgraph(target):
    def f(t, y):
        for _ in range(100):
            t = t * 0.5 + y
            t = torch.sigmoid(t) - y
        return t

    torch._dynamo.reset()
    failed, built = gint.counters()["graphs_failed"], gint.counters()["programs_built"]
    x, y = torch.randn(70, device=target.device), torch.randn(70, device=target.device)
    torch.testing.assert_close(torch.compile(f, backend="gint")(x, y), f(x, y))
    assert gint.counters()["graphs_failed"] == failed  # compiled, not rescued by the eager path
    assert gint.counters()["programs_built"] - built == 1
