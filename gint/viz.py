"""Pictures of gint's programs for notebooks and reports (issue 18).

``draw_program(program_or_subgraph)``: the bytecode as a figure: the stack depth before
and after each instruction as a step plot, the instructions named along the x axis,
each LOAD and STORE marked with its tensor, and a row program's chunk loops shaded (the
code in a shaded span runs once per chunk of the row, the rest once per row or tile).
Works on a ``gint.host.program.Program`` (its depths come from the verifier), on what
``gint.explain`` reports (``report.subgraphs[i]``) and on a compiled subgraph.
"""

from __future__ import annotations

from gint import isa
from gint.host.disasm import format_operand
from gint.host.program import Program
from gint.host.verifier import verify

_MEMORY = {isa.BY_NAME["LOAD"].opcode: "load", isa.BY_NAME["STORE"].opcode: "store"}


def _program_and_depths(item) -> tuple[Program, list[int]]:
    """A Program and the stack depth before each of its instructions."""
    item = getattr(item, "callable", item)  # a SubgraphReport
    item = getattr(item, "executable", item)  # a GintCompiledSubgraph
    if isinstance(item, Program):
        return item, verify(item)
    program, depths = getattr(item, "program", None), getattr(item, "depths", None)
    if not isinstance(program, Program):
        raise TypeError(f"draw_program takes a Program, a gint subgraph or its report, not {type(item).__name__}")
    return program, list(depths) if depths is not None else verify(program)


def depth_after(program: Program, depths: list[int]) -> list[int]:
    """The stack depth after each instruction (HALT: the same as before)."""
    after = []
    for (opcode, _), depth in zip(program.code, depths, strict=True):
        ins = isa.BY_OPCODE[opcode]
        after.append(depth - ins.pops + ins.pushes)
    return after


def draw_program(item, ax=None, title: str | None = None):
    """Draw the program (see the module docstring) on ``ax`` (a new figure if None);
    returns the figure."""
    import matplotlib.pyplot as plt

    program, depths = _program_and_depths(item)
    after = depth_after(program, depths)
    n = len(program.code)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.28 * n), 3.6))
    for body in program.loop_bodies():
        ax.axvspan(body.start - 0.5, body.stop - 0.5, color="tab:blue", alpha=0.08, lw=0)
    xs = [x for k in range(n) for x in (k - 0.5, k + 0.5)]
    ys = [y for k in range(n) for y in (depths[k], after[k])]
    ax.plot(xs, ys, color="black", lw=1.2, drawstyle="steps-post", label="stack depth")
    for k, (opcode, operand) in enumerate(program.code):
        kind = _MEMORY.get(opcode)
        if kind is None:
            continue
        slot, _ = isa.decode_slot(operand)
        name = program.slot_names[slot] if slot < len(program.slot_names) else f"%{slot}"
        color = "tab:green" if kind == "load" else "tab:red"
        ax.annotate(name, (k, max(depths[k], after[k]) + 0.15), ha="center", fontsize=6, color=color, rotation=90)
    names = []
    for opcode, operand in program.code:
        ins = isa.BY_OPCODE[opcode]
        names.append(ins.name.lower() if ins.operand is isa.Operand.NONE else f"{ins.name.lower()} {format_operand(ins, operand)}")
    ax.set_xticks(range(n))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(0, isa.MAX_DEPTH + 1.5)
    ax.axhline(isa.MAX_DEPTH, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("stack depth")
    ax.set_title(title or f"{n} instructions" + (", shaded: once per chunk of a row" if program.loop_bodies() else ""))
    ax.figure.tight_layout()
    return ax.figure
