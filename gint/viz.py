"""Pictures of gint's programs and partitions for notebooks and reports (issue 18).

``draw_partitions(report_or_fn, *args)``: each compiled graph's nodes in layers (a node's
layer is one more than the deepest node it reads), coloured by the gint subgraph that
runs them; eager nodes grey squares, graph inputs and outputs white diamonds, edges from
what a node reads. ``print(report)`` gives the reasons of the eager nodes.

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


def _layers(nodes) -> dict[str, int]:
    layer: dict[str, int] = {}
    for node in nodes:  # graph order is a topological order
        layer[node.name] = 1 + max((layer[name] for name in node.inputs if name in layer), default=-1)
    return layer


def draw_partitions(item, *args, graph: int = 0, ax=None, title: str | None = None):
    """Draw compiled graph number ``graph`` of a ``gint.explain`` report, or of
    ``gint.explain(item, *args)`` when ``item`` is a function (module docstring); returns
    the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if callable(item) and not hasattr(item, "partition_maps"):
        import gint

        item = gint.explain(item, *args)
    if not getattr(item, "partition_maps", None):
        raise ValueError("the report holds no compiled graph (did gint see the function run?)")
    nodes = item.partition_maps[graph]
    layer = _layers(nodes)
    rows: dict[int, int] = {}
    position = {}
    for node in nodes:
        column = layer[node.name]
        position[node.name] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    width, height = 1 + max(layer.values()), max(rows.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 1.1 * width), max(3.0, 0.55 * height + 1.2)))
    for node in nodes:
        for name in node.inputs:
            (x0, y0), (x1, y1) = position[name], position[node.name]
            ax.plot([x0, x1], [y0, y1], color="0.75", lw=0.7, zorder=1)
    colors = plt.get_cmap("tab10")
    subgraphs = sorted({node.subgraph for node in nodes if node.subgraph is not None})
    for node in nodes:
        x, y = position[node.name]
        if node.subgraph is not None:
            style = {"marker": "o", "color": colors(subgraphs.index(node.subgraph) % 10)}
        elif node.label in ("input", "output"):
            style = {"marker": "D", "color": "white"}
        else:
            style = {"marker": "s", "color": "0.6"}
        ax.scatter([x], [y], s=180, edgecolors="black", linewidths=0.6, zorder=2, c=[style["color"]], marker=style["marker"])
        ax.annotate(node.label, (x, y), xytext=(0, -13), textcoords="offset points", ha="center", fontsize=6)
    handles = [Line2D([], [], marker="o", ls="", color=colors(k % 10), label=f"gint subgraph {s}") for k, s in enumerate(subgraphs)]
    handles += [
        Line2D([], [], marker="s", ls="", color="0.6", label="eager"),
        Line2D([], [], marker="D", ls="", markerfacecolor="white", markeredgecolor="black", label="input / output"),
    ]
    ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(height - 0.4, -0.8)
    ax.set_axis_off()
    ax.set_title(title or f"{len(subgraphs)} gint subgraph(s), {sum(n.subgraph is not None for n in nodes)} of the graph's nodes")
    ax.figure.tight_layout()
    return ax.figure
