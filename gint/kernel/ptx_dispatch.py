"""Two edits to the dispatch block of the interpreter's PTX (LLVM's NVPTX output).

The dispatch block ends in the kernel's largest jump table, ``brx.idx`` over every key.
``gint.kernel.switches.without_range_check`` gave its switch an unreachable default, yet
LLVM's NVPTX back end still compares the key against the table's length and branches to
that default (which it lowers to ``exit``) before the ``brx.idx``. Every key a verified
program holds has a table entry, so:

1. the compare and its branch are dropped;
2. the next key, which the block loads for the following dispatch, is loaded straight into
   the register that carries it round the loop. LLVM loads it into a fresh register and
   copies it over after moving the current key into the index register; ptxas then
   schedules the load first and has to wait for it before the ``brx.idx``, once per
   bytecode instruction. Moving the current key into the index register first lets the
   load target the carried register and stay in flight through the case.

Conservative like ``switches``: anything unexpected leaves the text as it is. Only
``KernelConfig.direct_dispatch`` builds run these edits; while the shipped kernels have it
on, ``tests/test_switches.py`` checks that their dispatch has neither edit missing and that
no key a verified program holds lands on the unreachable default's ``exit``.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"^\$L__BB\d+_\d+:")
_TARGETS = re.compile(r"^\s*(\$L_brx_\d+): \.branchtargets")
_BRX = re.compile(r"^\s*brx\.idx\s+(%r\d+), (\$L_brx_\d+);")
_MOVE = re.compile(r"^\s*mov\.b32\s+(%r\d+), (%r\d+);$")
_LOAD = re.compile(r"^(\s*ld\.global\.b32\s+)(%r\d+)(, \[.*\];)$")


def _register_uses(text: str, register: str) -> int:
    return len(re.findall(re.escape(register) + r"(?!\d)", text))


def _function_around(lines: list[str], k: int) -> range:
    """The line numbers of the function (``.entry`` or ``.func``) that line ``k`` is in."""
    first = k
    while first > 0 and not re.match(r"^(\.visible |\.weak )?\.(entry|func)\b", lines[first]):
        first -= 1
    last = k
    while last < len(lines) - 1 and lines[last] != "}":
        last += 1
    return range(first, last + 1)


def _dispatch_block(lines: list[str]) -> tuple[int, int, str, int] | None:
    """(first line after the block's label, index of its ``brx.idx`` line, index register,
    table entries) of the block ending in the largest jump table."""
    best = None
    for k, line in enumerate(lines):
        match = _TARGETS.match(line)
        if not match:
            continue
        end = k
        while not lines[end].rstrip().endswith(";"):
            end += 1
        brx = _BRX.match(lines[end + 1]) if end + 1 < len(lines) else None
        if brx is None or brx.group(2) != match.group(1):
            continue
        if best is None or end - k > best[0]:
            best = (end - k, k, end + 1, brx.group(1))
    if best is None:
        return None
    _, targets, brx_line, index = best
    start = targets
    while start > 0 and not _LABEL.match(lines[start - 1]):
        start -= 1
    if start == 0:
        return None
    return start, brx_line, index, best[0]


def tighten_dispatch(ptx: str) -> tuple[str, list[str]]:
    """``ptx`` with the dispatch's range check dropped and its next key loaded in place;
    and which of the two edits were made ("range check", "key load")."""
    lines = ptx.split("\n")
    found = _dispatch_block(lines)
    if found is None:
        return ptx, []
    start, brx_line, index, entries = found
    block = list(range(start, brx_line))
    moves = [(k, _MOVE.match(lines[k])) for k in block]
    current = [(k, m.group(2)) for k, m in moves if m and m.group(1) == index]
    if len(current) != 1:
        return ptx, []
    index_move, key = current[0]
    done = []
    drop: set[int] = set()
    # 1. "setp.gt.u32 %p, key, entries - 1; @%p bra default;" right before the work
    for k in block[:-1]:
        check = re.match(rf"^\s*setp\.gt\.u32\s+(%p\d+), {re.escape(key)}, {entries - 1};$", lines[k])
        if check and re.match(rf"^\s*@{re.escape(check.group(1))} bra(\.uni)?\s+\$L__BB\d+_\d+;$", lines[k + 1]):
            drop |= {k, k + 1}
            done.append("range check")
            break
    # 2. "ld new, [..]; ...; mov index, key; mov key, new;" (and "mov key, new;" on the other
    # edges back to the dispatch) -> "mov index, key; ...; ld key, [..]"
    carry = [(k, m.group(2)) for k, m in moves if m and m.group(1) == key and k > index_move]
    if len(carry) == 1:
        new = carry[0][1]
        copy = re.compile(rf"^\s*mov\.b32\s+{re.escape(key)}, {re.escape(new)};$")
        loads = [k for k in block if (m := _LOAD.match(lines[k])) and m.group(2) == new]
        body = _function_around(lines, start)  # registers are per function
        copies = {k for k in body if copy.match(lines[k])}
        uses_of_new = [k for k in body if _register_uses(lines[k], new)]
        # reads of the key: only the block's own, before the load that will now overwrite it
        reads = [
            k
            for k in body
            if _register_uses(lines[k], key) and not re.match(rf"^\s*mov\.b32\s+{re.escape(key)}, %r\d+;$", lines[k])
        ]
        if (
            len(loads) == 1
            and loads[0] < index_move
            and set(uses_of_new) == copies | set(loads)
            and all(start <= k < loads[0] or k == index_move for k in reads)
        ):
            load = _LOAD.match(lines[loads[0]])
            lines[loads[0]] = f"{load.group(1)}{key}{load.group(3)}"
            index_line = lines[index_move]
            drop |= copies | {index_move}
            lines.insert(start, index_line)
            drop = {k + 1 if k >= start else k for k in drop}
            done.append("key load")
    if not done:
        return ptx, []
    return "\n".join(line for k, line in enumerate(lines) if k not in drop), done
