"""Stack scheduling: expression DAGs plus ordered stores -> stack-machine instructions.

The stack is the kernel's register file, so scheduling is register allocation in
disguise:

- A value used more than once is *held*: computed once into a stack position below
  the working area and copied up with PICK wherever it is needed.
- The work is a sequence of steps: materialize a held value, or evaluate and STORE
  one output. After each step, held values whose last use has passed are freed; the
  topmost live held value is moved down into a freed position with one POKE, and
  freed positions on top are popped, so the stack stays as shallow as the live
  values allow.
- Everything else is evaluated in place, operands before operators, choosing the
  operand order that needs fewer stack entries (Sethi-Ullman); non-commutative
  operators evaluated right-first get a SWAP.
- Constants are re-emitted where used (CONST is as cheap as PICK); an operator with
  a constant operand uses its immediate form (``x * 0.5`` is one MULI, not CONST +
  MUL).
- Values still on the stack at the end are left there: HALT drops them.
- Loads go first, held, as many as the stack allows: their memory latencies then
  overlap instead of adding up (a load's value is waited for at its first use).
- A load of a slot that a store overwrites is held from before that store, so every
  use reads the old value.
- If that still does not fit, loads are re-issued at each use (an L1 hit) instead of
  held, and then every computed value is held (its own step), which frees each
  operand right after its last use.

``schedule`` raises ``StackDepthError`` when even that needs more than
``isa.MAX_DEPTH`` entries; callers split the work (the conductor) or report it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gint import isa
from gint.host.expr import COMMUTATIVE, MATH, REDUCE, Accumulate, Node, Store, postorder, run_iteratively

_UNPARK = isa.BY_NAME["UNPARK"].opcode


# Operator -> its form with the constant as the right operand: the table's "<op>I" row.
IMMEDIATE_RIGHT = {op: op + "I" for op in isa.BY_NAME if op + "I" in isa.BY_NAME}
_MIRRORED = {"LT": "GT", "GT": "LT", "LE": "GE", "GE": "LE"}  # c < a  is  a > c


def _left_form(op: str) -> str | None:
    """The immediate form of ``op`` with the constant as the LEFT operand."""
    if op in COMMUTATIVE:
        return IMMEDIATE_RIGHT[op]
    if f"R{op}I" in isa.BY_NAME:  # RSUBI: imm - a
        return f"R{op}I"
    return IMMEDIATE_RIGHT.get(_MIRRORED.get(op, ""))


IMMEDIATE_LEFT = {op: _left_form(op) for op in IMMEDIATE_RIGHT if _left_form(op) is not None}


def immediate_form(node: Node) -> tuple[str, Node, int] | None:
    """(instruction, the non-constant operand, the constant's bits) when ``node`` is a
    binary operator with a CONST operand that has an immediate form."""
    if len(node.args) != 2:
        return None
    left, right = node.args
    if right.op == "CONST" and node.op in IMMEDIATE_RIGHT:
        return IMMEDIATE_RIGHT[node.op], left, right.operand
    if left.op == "CONST" and node.op in IMMEDIATE_LEFT:
        return IMMEDIATE_LEFT[node.op], right, left.operand
    return None


class StackDepthError(ValueError):
    """The expressions need more than ``isa.MAX_DEPTH`` stack entries at once."""


Item = Store | Accumulate  # a step's work: write a tensor, or fold into an accumulator


def zero_outside_row(node: Node) -> bool:
    """Whether ``node`` is 0 at elements past the row's end (loads there give 0), so a
    sum needs no ROWMASK. Only sums, differences and products of such values qualify (a
    product with anything else could be 0 * inf), and products with finite constants."""
    return run_iteratively(_zero_outside_row_steps(node))


def _zero_outside_row_steps(node: Node):
    if node.op == "LOAD":
        return isa.decode_slot(node.operand)[1] == 0
    if node.op == "CONST":
        return False
    if node.op in ("MUL", "ADD", "SUB", "NEG"):
        zero = []
        for arg in node.args:
            zero.append((yield _zero_outside_row_steps(arg)))
        if node.op == "MUL":
            return all(z or _finite_const(arg) for z, arg in zip(zero, node.args)) and any(zero)
        return all(zero)
    return False


def _finite_const(node: Node) -> bool:
    return node.op == "CONST" and abs(isa.bits_f32(node.operand)) < float("inf")


def _distinct_pair(args: tuple[Node, ...]) -> tuple[Node, ...]:
    """``op(x, x)`` uses x once: it is pushed, then DUP (see ``_Scheduler._compute``)."""
    return args[:1] if len(args) == 2 and args[0] == args[1] else args


def _held_nodes(
    items: Sequence[Item], hoisted_loads: int, hold_all: bool, reload: bool, pinned: frozenset
) -> tuple[list[Node], set[Node]]:
    """Nodes to hold, and the hoisted loads among them. ``hold_all`` holds every computed
    node: each becomes its own step, so operands are freed right after their last use.
    ``reload`` re-issues a load at each use instead of holding its value (it hits L1).
    ``pinned`` nodes are already on the stack."""
    uses: dict[Node, int] = {}
    everything = postorder([item.value for item in items], stop=pinned)
    for node in everything:
        for arg in _distinct_pair(node.args):
            uses[arg] = uses.get(arg, 0) + 1
    for item in items:
        uses[item.value] = uses.get(item.value, 0) + 1
    for node in pinned:
        uses.pop(node, None)
    cheap = ("CONST", "LOAD") if reload else ("CONST",)
    held = {node for node, count in uses.items() if count > 1 and node.op not in cheap}
    if hold_all:
        held |= {node for node in everything if not node.is_leaf}
    loads = [node for node in everything if node.op == "LOAD"]
    hoisted = set(loads[:hoisted_loads])
    stored_slots = {item.slot for item in items if isinstance(item, Store)}
    clobbered = {n for n in loads if isa.decode_slot(n.operand)[0] in stored_slots}
    held |= hoisted | clobbered
    return [n for n in everything if n in held], hoisted


class _Scheduler:
    def __init__(
        self,
        items: Sequence[Item],
        hoisted_loads: int,
        hold_all: bool = False,
        reload: bool = False,
        base: Sequence[Node] = (),
    ):
        self.stores = list(items)
        self.code: list[tuple[int, int]] = []
        self.depth = len(base)
        self.held: list[Node | None] = list(base)  # bottom positions; None = freed
        self.pinned = frozenset(base)  # on the stack before this code and after it
        self.position: dict[Node, int] = {node: i for i, node in enumerate(base)}
        self.need: dict[Node, int] = {}
        held, hoisted = _held_nodes(self.stores, hoisted_loads, hold_all, reload, self.pinned)
        self.is_held = set(held) | self.pinned
        self.steps = self._steps(held, hoisted)
        self.last_use = self._last_uses()

    # -- planning ------------------------------------------------------------

    def _steps(self, held: list[Node], hoisted: set[Node]) -> list[tuple[str, object]]:
        """("hold", node) and ("store", store) steps in execution order."""
        steps: list[tuple[str, object]] = [("hold", n) for n in held if n in hoisted]
        done = set(hoisted)
        first_store: dict[int, int] = {}
        for index, store in enumerate(self.stores):
            if isinstance(store, Store):
                first_store.setdefault(store.slot, index)
        for index, store in enumerate(self.stores):
            # loads of slots stored from here on must be held before this store
            due = [
                n
                for n in held
                if n.op == "LOAD" and first_store.get(isa.decode_slot(n.operand)[0]) == index
            ]
            due += [n for n in postorder([store.value], stop=self.pinned) if n in self.is_held]
            for node in due:
                if node not in done:
                    done.add(node)
                    steps.append(("hold", node))
            steps.append(("store", store))
        return steps

    def _references(self, root: Node, top_level: bool) -> set[Node]:
        """Held nodes that evaluating ``root`` reads directly (stops at held nodes)."""
        found: set[Node] = set()
        stack = list(root.args) if top_level else [root]
        while stack:
            node = stack.pop()
            if node in self.is_held:
                found.add(node)
            else:
                stack.extend(node.args)
        return found

    def _last_uses(self) -> dict[Node, int]:
        last: dict[Node, int] = {}
        for index, (kind, item) in enumerate(self.steps):
            refs = self._references(item, True) if kind == "hold" else self._references(item.value, False)
            for node in refs:
                last[node] = index
        return last

    def _need(self, node: Node) -> int:
        """Stack entries needed to evaluate ``node`` on top of the stack."""
        return run_iteratively(self._need_steps(node))

    def _need_steps(self, node: Node):
        if node in self.position or node.is_leaf:
            return 1
        immediate = immediate_form(node)
        if immediate is not None:
            return (yield self._need_steps(immediate[1]))
        if node not in self.need:
            needs = []
            for arg in node.args:
                needs.append((yield self._need_steps(arg)))
            best = max(n + i for i, n in enumerate(needs))
            if len(needs) == 2:
                best = min(best, max(needs[1], needs[0] + 1))
            self.need[node] = best
        return self.need[node]

    # -- emission ------------------------------------------------------------

    def _emit(self, name: str, operand: int = 0) -> None:
        if name == "PARK" and self.code and self.code[-1][0] == _UNPARK:
            # UNPARK then PARK moves a value out of the math register and back: drop both,
            # so chained functions (exp(sin(x))) run back to back on the math register
            self.code.pop()
            self.depth -= 1
            return
        ins = isa.BY_NAME[name]
        self.code.append((ins.opcode, operand))
        self.depth += ins.pushes - ins.pops
        if self.depth > isa.MAX_DEPTH:
            raise StackDepthError(
                f"needs more than {isa.MAX_DEPTH} stack entries; split the computation into smaller programs"
            )

    def _push(self, node: Node) -> None:
        """Leave the value of ``node`` on top of the stack."""
        run_iteratively(self._push_steps(node))

    def _compute(self, node: Node) -> None:
        run_iteratively(self._compute_steps(node))

    def _push_steps(self, node: Node):
        if node in self.position:
            self._emit("PICK", self.depth - 1 - self.position[node])
            return
        if node.is_leaf:
            self._emit(node.op, node.operand)
            return
        yield self._compute_steps(node)

    def _compute_steps(self, node: Node):
        immediate = immediate_form(node)
        if immediate is not None:
            name, operand, bits = immediate
            yield self._push_steps(operand)
            self._emit(name, bits)
            return
        if node.op == REDUCE:
            raise ValueError("a reduction's value is used before its row program computed it")
        args = node.args
        if len(args) == 2 and args[0] == args[1] and args[0] not in self.position:
            yield self._push_steps(args[0])
            self._emit("DUP")
        elif len(args) == 2 and self._need(args[1]) > self._need(args[0]):
            yield self._push_steps(args[1])
            yield self._push_steps(args[0])
            if node.op not in COMMUTATIVE:
                self._emit("SWAP")
        else:
            for arg in args:
                yield self._push_steps(arg)
        if node.op == MATH:
            self._emit("PARK" if len(args) == 1 else "PARK2")
            self._emit("MATH", node.operand)
            self._emit("UNPARK")
            return
        self._emit(node.op, node.operand)

    def _hold(self, node: Node) -> None:
        if node.is_leaf:
            self._emit(node.op, node.operand)
        else:
            self._compute(node)
        if None in self.held:
            position = self.held.index(None)
            self._emit("POKE", self.depth - 2 - position)
        else:
            position = len(self.held)
            self.held.append(None)
        self.held[position] = node
        self.position[node] = position

    def _release(self, step: int) -> None:
        for position, node in enumerate(self.held):
            if node is not None and node not in self.pinned and self.last_use.get(node, -1) <= step:
                self.held[position] = None
                del self.position[node]
        while self.held and (self.held[-1] is None or None in self.held):
            if self.held[-1] is None:
                self.held.pop()
                self._emit("POP")
                continue
            hole = self.held.index(None)  # move the top held value down into the hole
            node = self.held.pop()
            self._emit("POKE", self.depth - 2 - hole)
            self.held[hole] = node
            self.position[node] = hole

    def _accumulate(self, item: Accumulate) -> None:
        """Fold the value into its accumulator: ROWMASK keeps elements past the row's end
        out of the result; the accumulator is combined in place when directly below."""
        reduction = isa.REDUCTION_BY_CODE[item.reduction]
        self._push(item.value)
        if not (reduction.name == "sum" and zero_outside_row(item.value)):
            self._emit("ROWMASK", isa.f32_bits(reduction.identity))
        if item.position == self.depth - 2:
            self._emit(reduction.combine)
            return
        self._emit("PICK", self.depth - 1 - item.position)
        self._emit(reduction.combine)
        self._emit("POKE", self.depth - 2 - item.position)

    def run(self, halt: bool = True) -> list[tuple[int, int]]:
        """The code; with ``halt`` it ends in HALT, else it leaves exactly the pinned base
        on the stack (a chunk loop's body)."""
        last = len(self.steps) - 1
        for index, (kind, item) in enumerate(self.steps):
            if kind == "hold":
                self._hold(item)
            elif isinstance(item, Accumulate):
                self._accumulate(item)
            else:
                self._push(item.value)
                self._emit("STORE", isa.encode_slot(item.slot, item.offset))
            if index < last or not halt:  # after the last step HALT drops what is left
                self._release(index)
        if halt:
            self._emit("HALT")
        return self.code


# Whether a chunk loop's body (a row program) hoists its loads as a straight-line
# program does: overlapping their latencies costs a PICK and a POP per load there.
HOIST_LOADS_IN_LOOPS = False


def schedule(stores: Sequence[Item], *, base: Sequence[Node] = (), halt: bool = True) -> list[tuple[int, int]]:
    """Instructions that perform ``stores`` (and accumulations) in order, ending with HALT
    (without ``halt``: ending with the stack as it began, ``base`` values at the bottom).

    Hoists as many loads to the start as the stack allows (all, if they fit; none in a
    loop body unless ``HOIST_LOADS_IN_LOOPS``). If even no hoisting needs too deep a
    stack, loads used twice are re-issued instead of held, and then every computed
    value becomes its own step, so the stack holds only the values still live
    (register allocation in DAG order).
    """
    n_loads = len({n for n in postorder([st.value for st in stores], stop=frozenset(base)) if n.op == "LOAD"})
    if not halt and not HOIST_LOADS_IN_LOOPS:
        n_loads = 0
    attempts = [{"hoisted_loads": h} for h in range(n_loads, -1, -1)]
    attempts += [{"hoisted_loads": 0, "hold_all": h, "reload": True} for h in (False, True)]
    for attempt in attempts:
        try:
            return _Scheduler(stores, base=base, **attempt).run(halt)
        except StackDepthError:
            pass
    return _Scheduler(stores, 0, hold_all=True, base=base).run(halt)


def push_value(node: Node, base: Sequence[Node]) -> list[tuple[int, int]]:
    """Code that computes ``node`` on top of ``base`` (values already on the stack),
    holding nothing: for small row-uniform values computed once per row."""
    scheduler = _Scheduler([], 0, base=base)
    scheduler._push(node)
    return scheduler.code

