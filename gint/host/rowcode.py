"""Row programs: expressions with reductions -> chunk loops, one per reduction level.

A reduction (an ``expr.REDUCE`` node) has one value per row, and anything computed
from reductions alone is row-uniform too. The kernel gives each warp whole rows and
walks a row chunk by chunk (NEXTCHUNK loops back), so a row program is a sequence
of passes over the row:

1. For each *level* of reductions (level 0 reads only tensors, level 1 reads level-0
   results, ...): push each reduction's identity (its accumulator), loop over the
   chunks folding the element values into the accumulators (``stackcode`` schedules
   the loop body with the stack below it pinned), then REDUCE each accumulator across
   the warp. Its result stays on the stack, in the accumulator's place, for the
   passes after it; results no later pass reads are dropped.
2. Stores of row-uniform values (a reduction's output) into per-row tensors
   (``Store.per_row``) run once, between loops: a slot that does not move along the
   row is written by the row's element 0 only. Code between loops runs on the row's
   first chunk alone, so a launch checks that such a slot does not move along the row
   (``Program.once_per_row_slots``).
3. Every other store, a row-uniform value broadcast over a whole row included, runs
   in a final loop over the chunks.

Passes re-read their inputs (the second read of a row hits L1/L2); nothing is kept
across a loop but the reductions' results. ``schedule_rows`` raises
``stackcode.StackDepthError`` when a pass does not fit on the stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from gint import isa
from gint.host import stackcode
from gint.host.expr import REDUCE, Accumulate, Node, Store, is_uniform, postorder


def reductions_by_level(values: Sequence[Node]) -> list[list[Node]]:
    """The reductions under ``values`` grouped by level: a level's reductions read only
    reductions of earlier levels."""
    level: dict[Node, int] = {}
    for node in postorder(values):
        if node.op == REDUCE:
            inner = [n for n in postorder(node.args) if n.op == REDUCE]
            level[node] = 1 + max((level[n] for n in inner), default=-1)
    groups: list[list[Node]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for node, lvl in level.items():
        groups[lvl].append(node)
    return groups


def is_row_work(stores: Sequence[Store]) -> bool:
    """Whether the stores need a row program (they reduce rows or read the row length)."""
    return any(node.op in (REDUCE, "ROWLEN") for node in postorder([store.value for store in stores]))


class _RowProgram:
    def __init__(self):
        self.code: list[tuple[int, int]] = []
        self.base: list[Node] = []  # the values at the bottom of the stack, in order

    def emit(self, name: str, operand: int = 0) -> None:
        self.code.append((isa.BY_NAME[name].opcode, operand))

    def extend(self, code: list[tuple[int, int]]) -> None:
        self.code += code
        if len(self.code) > 1 << 16:
            raise stackcode.StackDepthError("the row program is too long")

    def loop(self, items: list) -> None:
        start = len(self.code)
        self.extend(stackcode.schedule(items, base=self.base, halt=False))
        self.emit("NEXTCHUNK", start)

    def finish(self, reduction: Node) -> None:
        """Turn the accumulator of ``reduction`` into the row's result, in place."""
        below_top = len(self.base) - 1 - self.base.index(reduction)
        if below_top:
            self.emit("PICK", below_top)
        self.emit("PARK")
        self.emit("REDUCE", reduction.operand)
        self.emit("UNPARK")
        if below_top:
            self.emit("POKE", below_top)

    def keep_only(self, live: set[Node]) -> None:
        """Drop base values outside ``live``: pop dead ones on top, move the top live one
        down into each hole below."""
        hole = 0
        while True:
            while self.base and self.base[-1] not in live:
                self.base.pop()
                self.emit("POP")
            if hole >= len(self.base):
                return
            if self.base[hole] not in live:  # below a live top (dead tops were popped)
                self.emit("POKE", len(self.base) - 2 - hole)
                self.base[hole] = self.base.pop()
            hole += 1

    def check_depth(self) -> None:
        if len(self.base) > isa.MAX_DEPTH:
            raise stackcode.StackDepthError(
                f"needs more than {isa.MAX_DEPTH} stack entries; split the computation into smaller programs"
            )


def _reads(values: Sequence[Node], base: list[Node]) -> set[Node]:
    """The base values that computing ``values`` reads."""
    pinned = frozenset(base)
    found = set(values) & pinned
    for node in postorder(values, stop=pinned):
        found |= {arg for arg in node.args if arg in pinned}
    return found


HOIST_ROOM = 4  # stack entries left free for a loop body when hoisting row-uniform values


def _uniform(values: Sequence[Node]) -> dict[Node, bool]:
    """For every node under ``values``, in one pass, operands first: whether it reads no
    tensor other than through a reduction (``is_uniform``)."""
    uniform: dict[Node, bool] = {}
    for node in postorder(values):
        uniform[node] = node.op == REDUCE or (node.op != "LOAD" and all(uniform[a] for a in node.args))
    return uniform


def _invariants(values: Sequence[Node], base: list[Node], uniform: dict[Node, bool]) -> list[Node]:
    """The largest row-uniform computations inside ``values`` that the base already
    allows: computed once per row instead of once per chunk. ``uniform``: ``_uniform`` of
    anything that holds ``values`` (the same for every reduction level of a program)."""
    available = set(base)
    # one pass, operands first (a walk per node was quadratic: chained softmaxes took
    # seconds to partition): whether a reduction lies under a node short of ``base``
    reduces: dict[Node, bool] = {}
    for node in postorder(values, stop=available):
        reduces[node] = node.op == REDUCE or any(reduces.get(a, False) for a in node.args)
    found: dict[Node, None] = {}
    stack = list(values)
    seen: set[Node] = set()
    while stack:
        node = stack.pop()
        if node in seen or node in available or node.is_leaf:
            continue
        seen.add(node)
        if not reduces[node] and uniform[node]:
            found[node] = None
        else:
            stack.extend(node.args)
    return list(found)


_PICK, _POKE = isa.BY_NAME["PICK"].opcode, isa.BY_NAME["POKE"].opcode
_BRANCH = isa.BY_NAME["NEXTCHUNK"].opcode


def _copy_end(code: list[tuple[int, int]], start: int) -> int | None:
    """For a ``PICK 0`` at ``start``: the index of the ``POKE 0`` that writes the copy's
    final value back over its original, if everything between reads and writes only
    entries above the original (so it can work on the original in place); else None."""
    height = 1  # entries above the original: the copy, then what the code between pushes
    for index in range(start + 1, len(code)):
        opcode, operand = code[index]
        ins = isa.BY_OPCODE[opcode]
        if opcode == _POKE and operand == 0 and height == 1:
            return index
        if opcode == _PICK:
            if operand > height - 1:
                return None
            height += 1
        elif opcode == _POKE:
            if operand > height - 2:
                return None
            height -= 1
        elif opcode == _BRANCH or ins is isa.HALT or ins.pops > height:
            return None
        else:
            height += ins.pushes - ins.pops
    return None


def in_place(code: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``code`` without ``PICK 0 ... POKE 0`` pairs whose code between could work on the
    original entry itself (``_copy_end``): turning a reduction's sum into its mean, or a
    variance into ``rsqrt(var + eps)``, is ``ROWLEN; DIV`` on the entry, not a copy, the
    same and a POKE back (two dispatches a row each). Loop targets follow the shift."""
    removed: set[int] = set()
    for index, (opcode, operand) in enumerate(code):
        if opcode == _PICK and operand == 0 and index not in removed:
            end = _copy_end(code, index)
            if end is not None and not removed & set(range(index, end + 1)):
                removed |= {index, end}
    if not removed:
        return code
    shift, before = [], 0
    for index in range(len(code) + 1):
        shift.append(before)
        before += index in removed
    return [
        (opcode, operand - shift[operand] if opcode == _BRANCH else operand)
        for index, (opcode, operand) in enumerate(code)
        if index not in removed
    ]


def schedule_rows(stores: Sequence[Store]) -> list[tuple[int, int]]:
    """The row program that performs ``stores`` (whose values contain reductions)."""
    program = _RowProgram()
    levels = reductions_by_level([store.value for store in stores])
    uniform = _uniform([store.value for store in stores])
    for index, group in enumerate(levels):
        for reduction in group:
            program.emit("CONST", isa.f32_bits(isa.REDUCTION_BY_CODE[reduction.operand].identity))
            program.base.append(reduction)
        program.check_depth()
        program.loop([Accumulate(r.args[0], r.operand, program.base.index(r)) for r in group])
        for reduction in group:
            program.finish(reduction)
        later = [r.args[0] for g in levels[index + 1 :] for r in g] + [store.value for store in stores]
        for node in _invariants(later, program.base, uniform):
            if len(program.base) + HOIST_ROOM > isa.MAX_DEPTH:
                break
            program.extend(stackcode.push_value(node, program.base))
            program.base.append(node)
        program.keep_only(_reads(later, program.base))
    once = [store.per_row and is_uniform(store.value) for store in stores]
    uniform = [store for store, single in zip(stores, once) if single]
    elementwise = [store for store, single in zip(stores, once) if not single]
    if uniform:
        program.extend(stackcode.schedule(uniform, base=program.base, halt=False))
    if elementwise:
        program.loop(elementwise)
    program.emit("HALT")
    return in_place(program.code)


def schedule_any(stores: Sequence[Store]) -> list[tuple[int, int]]:
    """A row program if the stores reduce rows, else a plain (tiled) stack program."""
    return schedule_rows(stores) if is_row_work(stores) else stackcode.schedule(stores)
