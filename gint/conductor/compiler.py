"""``GintCompiler``: one partition of an ATen graph -> verified bytecode, ready to launch.

The partition's nodes become expression stores (``lowering``), the stores become a
stack program (``gint.host.stackcode``), the program is verified and encoded once
(``gint.host.executor.prepare``). Programs are cached by the structure of the
expressions, so the same graph compiled twice (or the same pattern in two graphs)
builds its bytecode once.
"""

from __future__ import annotations

import threading

import torch
import torch.fx

from gint.conductor import lowering
from gint.conductor.fallback import EagerNodes
from gint.conductor.partitioner import boundary, build_stores
from gint.conductor.reductions import RowShape
from gint.conductor.subgraph import GintCompiledSubgraph, OutputSpec
from gint.host import executor, rowcode
from gint.host.program import Program


class GintCompiler:
    """Compiles partitions to ``GintCompiledSubgraph``s; caches programs by structure."""

    _programs: dict[tuple, Program] = {}
    _lock = threading.Lock()

    def program_for(self, stores: list, slot_names: tuple[str, ...]) -> Program:
        key = (tuple(stores), len(slot_names))
        program = self._programs.get(key)
        if program is None:
            program = Program(tuple(rowcode.schedule_any(stores)), slot_names)
            with self._lock:
                program = self._programs.setdefault(key, program)
        return program

    def compile(self, nodes: list[torch.fx.Node], choose: bool = False, composites=()) -> GintCompiledSubgraph:
        """``nodes`` as one compiled subgraph; ``choose``: time it against eager per new
        input signature and run the faster (``gint.conductor.choice``). The eager twin runs
        each of ``composites`` (``gint.conductor.composites``) wholly inside ``nodes`` as
        its original operator."""
        edge = boundary(nodes)
        rows = RowShape.of(nodes, edge.inputs)
        if isinstance(rows, str):
            raise ValueError(f"not a valid gint subgraph: {rows}")
        stores = build_stores(nodes, edge, rows)
        names = tuple(n.name for n in edge.inputs) + tuple(n.name for n in edge.outputs)
        program = self.program_for(stores, names)
        executable = executor.prepare(program)
        metas = [lowering.tensor_meta(node) for node in edge.outputs]
        kinds = [rows.kind(meta.shape) if rows else "full" for meta in metas]
        return GintCompiledSubgraph(
            executable,
            inputs=[lowering.tensor_meta(node) for node in edge.inputs],
            outputs=[OutputSpec.of(meta, kind) for meta, kind in zip(metas, kinds)],
            ops=[str(node.target) for node in nodes],
            reduce_dims=rows.dims if rows else None,
            eager=EagerNodes(nodes, edge.inputs, edge.outputs, composites),
            choose=choose,
        )
