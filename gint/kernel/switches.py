"""Merge chains of ``switch`` instructions in optimized LLVM IR into one switch.

The interpreter's dispatch is one ``if key == ...`` chain over a dense key range.
LLVM's SimplifyCFG folds such a chain into ``switch`` instructions, but it stops
folding into a switch with N successors once that switch's block has 128 / N or more
predecessors; every block of the chain has one, so each switch stops at 64 cases, and
a 450-key dispatch becomes a chain of switches: a key in the k-th pays k range
checks, k-1 of them taken branches, before its jump table. A switch whose block holds
nothing else and whose single predecessor is a switch on the same value that
defaults to it is merged into that predecessor here, after optimization and before
code generation, which then emits one jump table (``brx.idx``) for the whole chain.

Only the textual IR is edited, conservatively: anything unexpected leaves that pair
alone, and the caller verifies the module.

``without_range_check`` then makes the dispatch switch's default unreachable: the
default is where HALT (and, in principle, a key no verified program holds) goes, so
code generation puts a range check and a taken branch before every jump-table dispatch.
With HALT's keys (one per stack depth) cases of their own and nothing else reaching the
default, the jump table can be indexed directly (``gint.kernel.ptx_dispatch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r"^([-\w.$\"]+):")
_SWITCH_HEAD = re.compile(r"^\s+switch (\S+) (%[-\w.$\"]+), label (%[-\w.$\"]+) \[\s*$")
_CASE = re.compile(r"^\s+(\S+) (-?\d+), label (%[-\w.$\"]+)\s*$")
_PHI = re.compile(r"^\s+%[-\w.$\"]+ = phi ")
_INCOMING = re.compile(r"\[ ([^\[\]]+?), (%[-\w.$\"]+) \]")


@dataclass
class _Switch:
    type: str
    value: str
    default: str
    cases: list[tuple[str, str]]  # (case value, target label)
    tail: str  # what follows the closing bracket (metadata)


@dataclass
class _Block:
    name: str
    lines: list[str]  # the label line first, except in the entry block

    def body(self) -> list[str]:
        instructions = self.lines[1:] if self.name else self.lines
        return [line for line in instructions if line.strip() and not line.strip().startswith(";")]


def _parse_switch(lines: list[str]) -> _Switch | None:
    head = _SWITCH_HEAD.match(lines[0])
    if head is None or not lines[-1].strip().startswith("]"):
        return None
    cases = []
    for line in lines[1:-1]:
        case = _CASE.match(line)
        if case is None or case.group(1) != head.group(1):
            return None
        cases.append((case.group(2), case.group(3)))
    return _Switch(head.group(1), head.group(2), head.group(3), cases, lines[-1].strip()[1:])


def _switch_lines(switch: _Switch) -> list[str]:
    lines = [f"  switch {switch.type} {switch.value}, label {switch.default} ["]
    lines += [f"    {switch.type} {value}, label {target}" for value, target in switch.cases]
    return lines + [f"  ]{switch.tail}"]


def _terminator_switch(block: _Block) -> tuple[int, _Switch] | None:
    """The block's terminating switch and the index of its first line."""
    for index in range(len(block.lines) - 1, 0, -1):
        if _SWITCH_HEAD.match(block.lines[index]):
            switch = _parse_switch([line for line in block.lines[index:] if line.strip()])
            return (index, switch) if switch is not None else None
    return None


def _split_blocks(body: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    for line in body:
        match = _LABEL.match(line)
        if match:
            blocks.append(_Block("%" + match.group(1), [line]))
        elif blocks:
            blocks[-1].lines.append(line)
        else:
            blocks.append(_Block("", [line]))  # the entry block has no label line
    return blocks


def _rename_incoming(block: _Block, old: str, new: str) -> bool:
    """Phi entries from ``old`` now come from ``new``; False if that leaves a phi with
    different values for ``new`` (the merged switch could not satisfy it)."""
    for k, line in enumerate(block.lines):
        if not _PHI.match(line):
            continue
        line = _INCOMING.sub(lambda m: f"[ {m.group(1)}, {new if m.group(2) == old else m.group(2)} ]", line)
        values = {m.group(1) for m in _INCOMING.finditer(line) if m.group(2) == new}
        if len(values) > 1:
            return False
        block.lines[k] = line
    return True


def _merge_once(blocks: list[_Block]) -> bool:
    by_name = {block.name: block for block in blocks}
    references: dict[str, int] = {}
    for block in blocks:
        for line in block.body():
            for label in re.findall(r"label (%[-\w.$\"]+)", line):
                references[label] = references.get(label, 0) + 1
    for outer in blocks:
        found = _terminator_switch(outer)
        if found is None:
            continue
        start, switch = found
        inner = by_name.get(switch.default)
        if inner is None or inner is outer or references.get(inner.name) != 1:
            continue
        inner_body = inner.body()
        inner_switch = _parse_switch(inner_body) if inner_body and _SWITCH_HEAD.match(inner_body[0]) else None
        if inner_switch is None or (inner_switch.type, inner_switch.value) != (switch.type, switch.value):
            continue
        if {v for v, _ in switch.cases} & {v for v, _ in inner_switch.cases}:
            continue
        targets = {t for _, t in inner_switch.cases} | {inner_switch.default}
        snapshots = {t: list(by_name[t].lines) for t in targets if t in by_name}
        if len(snapshots) != len(targets) or not all(
            _rename_incoming(by_name[t], inner.name, outer.name) for t in targets
        ):
            for t, lines in snapshots.items():
                by_name[t].lines = lines
            continue
        merged = _Switch(
            switch.type, switch.value, inner_switch.default, switch.cases + inner_switch.cases, switch.tail
        )
        outer.lines[start:] = _switch_lines(merged)
        blocks.remove(inner)
        return True
    return False


def _each_function(ir: str, edit) -> str:
    """``ir`` with ``edit(blocks)`` applied to the blocks of every function it defines."""
    out: list[str] = []
    lines = ir.split("\n")
    k = 0
    while k < len(lines):
        line = lines[k]
        out.append(line)
        k += 1
        if not (line.startswith("define ") and line.rstrip().endswith("{")):
            continue
        body = []
        while lines[k] != "}":
            body.append(lines[k])
            k += 1
        blocks = _split_blocks(body)
        edit(blocks)
        out.extend(line for block in blocks for line in block.lines)
    return "\n".join(out)


def merge_switch_chains(ir: str) -> tuple[str, int]:
    """``ir`` with every chain of switches on one value merged; and how many merges."""
    merges = 0

    def merge(blocks: list[_Block]) -> None:
        nonlocal merges
        while _merge_once(blocks):
            merges += 1

    return _each_function(ir, merge), merges

def _halt_case(blocks: list[_Block], keys: frozenset[int], halt_keys: frozenset[int]) -> bool:
    """Give the switch whose cases are exactly ``keys`` cases for ``halt_keys`` (to its
    default block, through a new block) and an unreachable default; False if no switch
    matches or its default is not a plain fall-out (then nothing is changed)."""
    by_name = {block.name: block for block in blocks}
    for outer in blocks:
        found = _terminator_switch(outer)
        if found is None:
            continue
        start, switch = found
        if {int(v) for v, _ in switch.cases} != keys or len(switch.cases) != len(keys) or keys & halt_keys:
            continue
        exit_block = by_name.get(switch.default)
        if exit_block is None or any(target == switch.default for _, target in switch.cases):
            return False
        halt = _Block("%gint.halt", ["gint.halt:", f"  br label {switch.default}"])
        if not _rename_incoming(exit_block, outer.name, halt.name):
            return False
        dead = _Block("%gint.bad_key", ["gint.bad_key:", "  unreachable"])
        cases = switch.cases + [(str(key), halt.name) for key in sorted(halt_keys)]
        outer.lines[start:] = _switch_lines(_Switch(switch.type, switch.value, dead.name, cases, switch.tail))
        blocks += [halt, dead]
        return True
    return False


def without_range_check(ir: str, keys: frozenset[int], halt_keys: frozenset[int]) -> tuple[str, bool]:
    """``ir`` with the switch on exactly ``keys`` (the dispatch: every key a verified
    program holds but HALT's) given ``halt_keys`` (HALT at each depth) as cases and an
    unreachable default; and whether that switch was found. Run after ``merge_switch_chains``."""
    found = []
    text = _each_function(ir, lambda blocks: found.append(_halt_case(blocks, keys, halt_keys)))
    return text, any(found)
