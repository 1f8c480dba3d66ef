"""Writing gint programs in Python.

Two levels, both derived from the instruction table:

``Assembler`` has one builder method per instruction (``asm.load(0)``,
``asm.const(2.0)``, ``asm.add()``, ...) for hand-written stack code.

``@bytecode`` traces a Python function over tensor slots into expressions and
schedules them onto the stack::

    @bytecode
    def axpy(x, y, out):
        out.store(x.load() * 2.0 + y.load())

    axpy.program          # the verified Program
    print(axpy.listing()) # its disassembly
    axpy(x, y, out)       # run it (gint.host.executor)

Operators ``+ - * / -x < <= > >= == !=`` and the functions ``minimum``,
``maximum``, ``where``, ``fma`` and one per math function of ``isa.FUNCTIONS``
(``exp``, ``tanh``, ``pow``, ...) build expressions; Python numbers become float32
immediates. ``row_sum``, ``row_max``, ``row_min``, ``row_prod`` (one per
``isa.REDUCTIONS``) and ``row_length()`` reduce along the row: a function using them
becomes a row program (``gint.host.rowcode``)::

    @bytecode
    def softmax(x, out):
        e = exp(x.load() - row_max(x.load()))
        out.store(e / row_sum(e))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from gint import isa
from gint.host import expr, rowcode
from gint.host.disasm import disassemble, parse_operand
from gint.host.program import Program
from gint.host.verifier import verify

# ------------------------------------------------------------------ assembler


class Assembler:
    """Builds a program instruction by instruction: ``asm.<mnemonic>(operand)``.

    Operands are given as in a listing: a slot number (with ``offset=``) for loads
    and stores, a float for ``const``, a position for ``pick``/``poke``.
    """

    def __init__(self, *slot_names: str):
        self.slot_names = slot_names
        self.code: list[tuple[int, int]] = []

    def __getattr__(self, mnemonic: str):
        ins = isa.BY_NAME.get(mnemonic.upper())
        if ins is None or mnemonic != ins.mnemonic:
            raise AttributeError(f"no instruction {mnemonic!r}")

        def build(operand=None, *, offset: int = 0) -> Assembler:
            if ins.operand is isa.Operand.SLOT:
                word = isa.encode_slot(operand, offset)
            elif ins.operand is isa.Operand.F32:
                word = isa.f32_bits(float(operand))
            elif ins.operand in (isa.Operand.DEPTH, isa.Operand.TARGET):
                word = int(operand)
            else:
                word = parse_operand(ins, "" if operand is None else str(operand))
            self.code.append((ins.opcode, word))
            return self

        build.__doc__ = f"{ins.name} ({ins.effect}): {ins.meaning}"
        return build

    def program(self, check: bool = True) -> Program:
        """The program so far; verified unless ``check=False``."""
        program = Program(tuple(self.code), self.slot_names)
        if check:
            verify(program)
        return program


# ------------------------------------------------------------------- tracing


def _node(value) -> expr.Node:
    if isinstance(value, Value):
        return value.node
    if isinstance(value, (bool, int, float)):
        return expr.const(float(value))
    raise TypeError(f"cannot use {type(value).__name__} in a gint expression")


class Value:
    """A traced float32 value: an expression over loaded elements."""

    __slots__ = ("node",)
    __hash__ = None  # == builds an expression, so Values are not hashable

    def __init__(self, node: expr.Node):
        self.node = node

    def _apply(self, op: str, *others, reverse: bool = False) -> Value:
        operands = [_node(o) for o in others]
        args = operands + [self.node] if reverse else [self.node] + operands
        return Value(expr.apply(op, *args))

    def __add__(self, other): return self._apply("ADD", other)
    def __radd__(self, other): return self._apply("ADD", other, reverse=True)
    def __sub__(self, other): return self._apply("SUB", other)
    def __rsub__(self, other): return self._apply("SUB", other, reverse=True)
    def __mul__(self, other): return self._apply("MUL", other)
    def __rmul__(self, other): return self._apply("MUL", other, reverse=True)
    def __truediv__(self, other): return self._apply("DIV", other)
    def __rtruediv__(self, other): return self._apply("DIV", other, reverse=True)
    def __neg__(self): return self._apply("NEG")
    def __lt__(self, other): return self._apply("LT", other)
    def __le__(self, other): return self._apply("LE", other)
    def __gt__(self, other): return self._apply("GT", other)
    def __ge__(self, other): return self._apply("GE", other)
    def __eq__(self, other): return self._apply("EQ", other)  # type: ignore[override]
    def __ne__(self, other): return self._apply("NE", other)  # type: ignore[override]

    def __bool__(self):
        raise TypeError("a traced gint value has no truth value; use gint.host.frontend.where()")

    def __repr__(self) -> str:
        return f"Value({self.node.op})"


def minimum(a, b) -> Value:
    return Value(expr.apply("MIN", _node(a), _node(b)))


def maximum(a, b) -> Value:
    return Value(expr.apply("MAX", _node(a), _node(b)))


def where(condition, if_true, if_false) -> Value:
    return Value(expr.apply("SELECT", _node(condition), _node(if_true), _node(if_false)))


def fma(a, b, c) -> Value:
    return Value(expr.apply("FMA", _node(a), _node(b), _node(c)))


def _reduction_builder(reduction: isa.Reduction) -> Callable:
    def build(value) -> Value:
        return Value(expr.reduce(reduction.name, _node(value)))

    build.__name__ = build.__qualname__ = f"row_{reduction.name}"
    build.__doc__ = f"row_{reduction.name}(v): the {reduction.meaning}, in every element of the row (a row program)"
    return build


# one builder per reduction of the table: row_sum(v), row_max(v), ...
REDUCTION_FUNCTIONS: dict[str, Callable] = {f"row_{r.name}": _reduction_builder(r) for r in isa.REDUCTIONS}
globals().update(REDUCTION_FUNCTIONS)


def row_length() -> Value:
    """The number of elements in the row (what a mean divides by)."""
    return Value(expr.rowlen())


def _math_builder(fn: isa.MathFn) -> Callable:
    def build(*args) -> Value:
        return Value(expr.math(fn.name, *(_node(a) for a in args)))

    build.__name__ = build.__qualname__ = fn.name
    build.__doc__ = f"{fn.name}({', '.join(isa.MATH_ARGS[: fn.arity])}): {fn.meaning} (the MATH instruction)"
    return build


# one builder per math function of the table: exp(x), pow(x, y), ...
MATH_FUNCTIONS: dict[str, Callable] = {fn.name: _math_builder(fn) for fn in isa.FUNCTIONS}
globals().update(MATH_FUNCTIONS)


class Slot:
    """A tensor slot inside a ``@bytecode`` function."""

    def __init__(self, index: int, name: str, trace: list[expr.Store]):
        self.index, self.name, self._trace = index, name, trace

    def load(self, offset: int = 0) -> Value:
        """This tensor's element at the current position (+offset along the row)."""
        if any(store.slot == self.index for store in self._trace):
            raise ValueError(f"{self.name} is loaded after it was stored; load it before the store")
        return Value(expr.load(self.index, offset))

    def store(self, value, offset: int = 0) -> None:
        """Write ``value`` to this tensor at the current position (+offset)."""
        self._trace.append(expr.Store(self.index, _node(value), offset))


def trace(fn: Callable, slot_names: tuple[str, ...]) -> list[expr.Store]:
    """Run ``fn`` on symbolic slots; return the stores it made, in order."""
    stores: list[expr.Store] = []
    fn(*(Slot(i, name, stores) for i, name in enumerate(slot_names)))
    if not stores:
        raise ValueError(f"{getattr(fn, '__name__', fn)} stores nothing")
    return stores


class BytecodeFunction:
    """A traced, scheduled and verified program, callable on tensors."""

    def __init__(self, fn: Callable):
        functools.update_wrapper(self, fn)
        names = tuple(inspect.signature(fn).parameters)
        if len(names) > isa.MAX_SLOTS:
            raise ValueError(f"{fn.__name__} takes {len(names)} tensors; at most {isa.MAX_SLOTS}")
        self.stores = trace(fn, names)
        self.program = Program(tuple(rowcode.schedule_any(self.stores)), names)
        self.depths = verify(self.program)

    def listing(self) -> str:
        return disassemble(self.program, self.depths)

    def __call__(self, *tensors):
        from gint.host.executor import run

        return run(self.program, tensors)


def bytecode(fn: Callable) -> BytecodeFunction:
    """Decorator: trace ``fn(slot0, slot1, ...)`` into a verified gint program."""
    return BytecodeFunction(fn)
