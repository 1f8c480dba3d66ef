"""Stack scheduling: expression DAGs plus ordered stores -> stack-machine instructions.

The stack is the kernel's register file, so scheduling is register allocation in
disguise:

- A value used more than once (or a load that a later store would clobber) is
  *held*: computed once into a stack position at the bottom and copied up with
  PICK wherever it is needed. When its last use has passed its position is dead and
  the next held value is written into it with POKE, so positions are reused.
- Everything else is evaluated in place, operands before operators, choosing the
  operand order that needs fewer stack entries (Sethi-Ullman); non-commutative
  operators evaluated right-first get a SWAP.
- Constants are re-emitted where used (CONST is as cheap as PICK).
- Loads go first, held, as many as the stack allows: their memory latencies then
  overlap instead of adding up (a load's value is waited for at its first use).

``schedule`` raises ``StackDepthError`` when the program needs more than
``isa.MAX_DEPTH`` entries; callers split the work (the conductor) or report it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gint import isa
from gint.host.expr import COMMUTATIVE, Node, Store, postorder


class StackDepthError(ValueError):
    """The expressions need more than ``isa.MAX_DEPTH`` stack entries at once."""


def _op(name: str, operand: int = 0) -> tuple[int, int]:
    return isa.BY_NAME[name].opcode, operand


class _Scheduler:
    def __init__(self, stores: Sequence[Store], hoisted_loads: int):
        self.stores = list(stores)
        self.hoisted_loads = hoisted_loads
        self.code: list[tuple[int, int]] = []
        self.depth = 0
        self.max_depth = 0
        self.held: list[Node | None] = []  # bottom positions; None = dead, reusable
        self.position: dict[Node, int] = {}
        self.need: dict[Node, int] = {}
        self._plan()

    # -- analysis ------------------------------------------------------------

    def _plan(self) -> None:
        uses: dict[Node, int] = {}
        self.first_use: dict[Node, int] = {}
        self.last_use: dict[Node, int] = {}
        for index, store in enumerate(self.stores):
            for node in postorder([store.value]):
                self.first_use.setdefault(node, index)
                self.last_use[node] = index
            uses[store.value] = uses.get(store.value, 0) + 1
        for node in postorder([store.value for store in self.stores]):
            for arg in node.args:
                uses[arg] = uses.get(arg, 0) + 1
        # A value is held if used twice; a load of a slot that some store overwrites
        # is held from before that store, so every use reads the old value.
        self.hold_at: dict[Node, int] = {
            node: self.first_use[node] for node, count in uses.items() if count > 1 and node.op != "CONST"
        }
        first_store = {}
        for index, store in enumerate(self.stores):
            first_store.setdefault(store.slot, index)
        for node in self.first_use:
            if node.op == "LOAD":
                slot, _ = isa.decode_slot(node.operand)
                clobber = first_store.get(slot)
                if clobber is not None and self.last_use[node] > clobber:
                    self.hold_at[node] = min(self.hold_at.get(node, clobber), clobber)
                    self.last_use[node] = max(self.last_use[node], clobber)

        # Loads issued up front are in flight together: one memory round trip, not one
        # per load. The first ``hoisted_loads`` loads (in order of use) are held from the start.
        loads = [n for n in postorder([st.value for st in self.stores]) if n.op == "LOAD"]
        for node in loads[: self.hoisted_loads]:
            self.hold_at[node] = 0

    def _need(self, node: Node) -> int:
        """Stack entries needed to evaluate ``node`` on top of the stack."""
        if node in self.position or node.is_leaf:
            return 1
        if node in self.need:
            return self.need[node]
        needs = [self._need(arg) for arg in node.args]
        best = max(n + i for i, n in enumerate(needs))
        if len(needs) == 2:
            best = min(best, max(needs[1], needs[0] + 1))
        self.need[node] = best
        return best

    # -- emission ------------------------------------------------------------

    def _emit(self, name: str, operand: int = 0) -> None:
        ins = isa.BY_NAME[name]
        self.code.append(_op(name, operand))
        self.depth += ins.pushes - ins.pops
        self.max_depth = max(self.max_depth, self.depth)
        if self.max_depth > isa.MAX_DEPTH:
            raise StackDepthError(
                f"needs more than {isa.MAX_DEPTH} stack entries; split the computation into smaller programs"
            )

    def _push(self, node: Node) -> None:
        """Leave the value of ``node`` on top of the stack."""
        if node in self.position:
            self._emit("PICK", self.depth - 1 - self.position[node])
            return
        if node.is_leaf:
            self._emit(node.op, node.operand)
            return
        args = node.args
        if len(args) == 2 and self._need(args[1]) > self._need(args[0]):
            self._push(args[1])
            self._push(args[0])
            if node.op not in COMMUTATIVE:
                self._emit("SWAP")
        else:
            for arg in args:
                self._push(arg)
        self._emit(node.op, node.operand)

    def _hold(self, node: Node) -> None:
        self._push(node)
        if None in self.held:
            position = self.held.index(None)
            self._emit("POKE", self.depth - 2 - position)
        else:
            position = len(self.held)
            self.held.append(None)
        self.held[position] = node
        self.position[node] = position

    def _release(self, index: int) -> None:
        for position, node in enumerate(self.held):
            if node is not None and self.last_use[node] <= index:
                self.held[position] = None
                del self.position[node]
        while self.held and self.held[-1] is None:
            self.held.pop()
            self._emit("POP")

    def run(self) -> list[tuple[int, int]]:
        for index, store in enumerate(self.stores):
            due = [n for n in postorder([store.value]) if self.hold_at.get(n) == index]
            due += [n for n, at in self.hold_at.items() if at == index and n not in due]
            for node in due:
                if node not in self.position:
                    self._hold(node)
            self._push(store.value)
            self._emit("STORE", isa.encode_slot(store.slot, store.offset))
            self._release(index)
        for _ in range(len(self.held)):
            self._emit("POP")
        self._emit("HALT")
        return self.code


def schedule(stores: Sequence[Store]) -> list[tuple[int, int]]:
    """Instructions that perform ``stores`` in order, ending with HALT.

    Hoists as many loads to the start as the stack allows (all, if they fit).
    """
    n_loads = len({n for n in postorder([st.value for st in stores]) if n.op == "LOAD"})
    for hoisted in range(n_loads, -1, -1):
        try:
            return _Scheduler(stores, hoisted).run()
        except StackDepthError:
            if hoisted == 0:
                raise
    raise AssertionError("unreachable")
