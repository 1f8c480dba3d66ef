"""Element-wise expression DAGs: what the frontend traces and the conductor lowers
FX graphs into, before stack scheduling turns them into instructions.

A ``Node`` is an instruction of ``gint.isa`` that pushes one value, with its
operand nodes. Nodes are immutable and hash-consed, so building the same expression
twice yields the same node: common subexpressions merge for free, and equality and
hashing cost O(1).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from gint import isa

# Instructions that can be an expression node: they push exactly one value and
# either compute it from popped operands or produce it from memory / an immediate.
# Operators with a built-in constant (ADDI, ...) are not nodes: the scheduler picks
# them for an operator whose operand is a CONST node.
VALUE_OPS = frozenset(
    ins.name
    for ins in isa.TABLE
    if ins.pushes == 1
    and ((ins.expr is not None and ins.operand is isa.Operand.NONE) or ins.name in ("LOAD", "CONST", "ROWLEN"))
)
COMMUTATIVE = frozenset({"ADD", "MUL", "MIN", "MAX", "EQ", "NE"})
MATH = "MATH"  # a node applying ``isa.FUNCTIONS[operand]`` to its operands (PARK, MATH, UNPARK)
# a row-uniform node: ``isa.REDUCTIONS[operand]`` of its operand over the row (a row program)
REDUCE = "REDUCE"


class Node:
    """An immutable expression node, hash-consed: building an expression equal to one
    that is alive returns that very object. Equality is therefore identity, and hashing
    and comparing cost O(1) whatever the depth (structural equality on a shared DAG is
    exponential: two fresh 22-deep SiLU chains took 8.7 s to compare)."""

    __slots__ = ("op", "args", "operand", "_hash", "__weakref__")
    _interned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    _lock = threading.Lock()

    def __new__(cls, op: str, args: tuple[Node, ...] = (), operand: int = 0):
        args = tuple(args)
        key = (op, args, operand)  # args are interned: the tuple compares by identity
        node = cls._interned.get(key)
        if node is not None:
            return node
        _check(op, args, operand)
        node = object.__new__(cls)
        object.__setattr__(node, "op", op)
        object.__setattr__(node, "args", args)
        object.__setattr__(node, "operand", operand)
        object.__setattr__(node, "_hash", hash(key))
        with cls._lock:
            return cls._interned.setdefault(key, node)

    def __setattr__(self, name, value):
        raise AttributeError(f"Node is immutable (tried to set {name})")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return self is other

    def __ne__(self, other) -> bool:
        return self is not other

    def __reduce__(self):  # copies and pickles come back interned
        return (Node, (self.op, self.args, self.operand))

    def __repr__(self) -> str:
        return _repr(self, 3)

    @property
    def is_leaf(self) -> bool:
        return not self.args


def _repr(node: Node, depth: int) -> str:
    """``node`` as its constructor call, operands ``depth`` levels deep (deeper: ``...``)."""
    if depth == 0:
        return "..."
    args = ", ".join(_repr(a, depth - 1) for a in node.args)
    return f"Node(op={node.op!r}, args=({args}{',' if len(node.args) == 1 else ''}), operand={node.operand!r})"


def _check(op: str, args: tuple, operand: int) -> None:
    if op == MATH:
        fn = isa.FUNCTION_BY_CODE.get(operand)
        if fn is None:
            raise ValueError(f"no math function with code {operand}")
        arity = fn.arity
    elif op == REDUCE:
        if operand not in isa.REDUCTION_BY_CODE:
            raise ValueError(f"no reduction with code {operand}")
        arity = 1
    elif op in VALUE_OPS:
        arity = isa.BY_NAME[op].pops
    else:
        raise ValueError(f"{op} is not a value-producing instruction")
    if len(args) != arity:
        raise ValueError(f"{op} takes {arity} operand(s), got {len(args)}")
    if not all(isinstance(a, Node) for a in args):
        raise TypeError(f"{op}'s operands must be Nodes")


def load(slot: int, offset: int = 0) -> Node:
    return Node("LOAD", (), isa.encode_slot(slot, offset))


def const(value: float) -> Node:
    return Node("CONST", (), isa.f32_bits(value))


def apply(op: str, *args: Node) -> Node:
    return Node(op, tuple(args))


def _sigmoid(x: Node) -> Node:
    # the kernel's sigmoid, 1 / (1 + exp(-x)), as plain instructions: the same operations
    # in the same order (so the same bits, tested), without parking or the MATH loop
    return apply("DIV", const(1.0), apply("ADD", const(1.0), apply("EXP", apply("NEG", x))))


# Math functions built from other instructions instead of MATH (each computes what the
# kernel's MATH function computes, in the same order: tests/test_instructions.py).
EXPANSIONS = {"sigmoid": _sigmoid}


def math(function: str, *args: Node) -> Node:
    """``function`` (a name in ``isa.FUNCTIONS``) applied to ``args``."""
    fn = isa.FUNCTION_BY_NAME.get(function)
    if fn is None:
        raise ValueError(f"no math function {function!r}; known: {', '.join(isa.FUNCTION_BY_NAME)}")
    if function in EXPANSIONS:
        return EXPANSIONS[function](*args)
    if function in isa.DIRECT_FUNCTIONS:
        return Node(isa.DIRECT_FUNCTIONS[function], tuple(args))
    return Node(MATH, tuple(args), fn.code)


_DIRECT_BY_OP = {op: function for function, op in isa.DIRECT_FUNCTIONS.items()}


def function_of(node: Node) -> str | None:
    """The name of the math function ``node`` applies (a MATH node or an instruction of a
    function's own, as ``math`` builds them), or None."""
    if node.op == MATH:
        fn = isa.FUNCTION_BY_CODE.get(node.operand)
        return None if fn is None else fn.name
    return _DIRECT_BY_OP.get(node.op)


def reduce(reduction: str, value: Node) -> Node:
    """``value`` reduced over the row (``reduction``: a name in ``isa.REDUCTIONS``)."""
    found = isa.REDUCTION_BY_NAME.get(reduction)
    if found is None:
        raise ValueError(f"no reduction {reduction!r}; known: {', '.join(isa.REDUCTION_BY_NAME)}")
    return Node(REDUCE, (value,), found.code)


def rowlen() -> Node:
    return Node("ROWLEN")


@dataclass(frozen=True)
class Accumulate:
    """Fold ``value`` into the accumulator of reduction ``reduction`` (a code of
    ``isa.REDUCTIONS``) held at stack ``position`` (a row program's chunk loop)."""

    value: Node
    reduction: int
    position: int


@dataclass(frozen=True)
class Store:
    """Write ``value`` to tensor ``slot`` at ``offset`` along the row. ``per_row``: the
    tensor holds one value per row (size 1 in a row program's reduced dims), so a
    row-uniform value is stored once per row instead of in a loop over the row."""

    slot: int
    value: Node
    offset: int = 0
    per_row: bool = False


def run_iteratively(call):
    """The result of ``call``, a generator written as a recursive function whose
    recursive calls are ``yield``ed generators (``value = yield self._f_steps(arg)``):
    they run on an explicit stack, so no pass recurses as deep as the expression (a
    chain of 320 operators used to overflow Python's stack)."""
    stack, value = [call], None
    while stack:
        try:
            callee = stack[-1].send(value)
        except StopIteration as done:
            stack.pop()
            value = done.value
            continue
        stack.append(callee)
        value = None
    return value


def postorder(roots, stop=frozenset()) -> list[Node]:
    """Every node reachable from ``roots``, operands before users, each once; nodes in
    ``stop`` are neither listed nor entered."""
    seen: set[Node] = set(stop)
    order: list[Node] = []
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in seen:
                continue
            if expanded:
                seen.add(node)
                order.append(node)
            else:
                stack.append((node, True))
                stack.extend((arg, False) for arg in reversed(node.args) if arg not in seen)
    return order


def is_uniform(node: Node) -> bool:
    """Whether ``node`` has one value per row: it reads no tensor except through reductions."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current in seen or current.op == REDUCE:
            continue
        if current.op == "LOAD":
            return False
        seen.add(current)
        stack.extend(current.args)
    return True
