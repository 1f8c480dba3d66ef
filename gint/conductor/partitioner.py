"""Which FX nodes run in gint, grouped into subgraphs the kernel can run in one launch.

``GraphPartitioner`` extends torch.fx's ``CapabilityBasedPartitioner`` (which forms
maximal acyclic groups of supported nodes) with gint's own constraints, applied by
splitting each proposed group into consecutive runs in topological order:

- at most ``max_tensors`` tensors cross the subgraph boundary (inputs + outputs;
  intermediates stay in registers and do not count);
- every output has the shape of the whole iteration domain (the broadcast of all
  inputs), and every input broadcasts to it;
- the expressions fit on the kernel's stack.

A contiguous run of a topological order cannot create a cycle, so splitting keeps
partitions acyclic; everything is deterministic (graph order). The result is plain
data: ``Plan`` with the partitions and the reason each other node stays eager.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from gint.conductor import lowering, promotion
from gint.conductor.lowering_math import without_final_rounding
from gint.conductor.reductions import RowShape
from gint.host import expr, rowcode, stackcode

log = logging.getLogger("gint")


@dataclass
class Plan:
    """The partitioner's result: node groups for gint, and the eager nodes' reasons."""

    partitions: list[list[torch.fx.Node]]
    fallback: dict[torch.fx.Node, str] = field(default_factory=dict)


class GintOperatorSupport(OperatorSupportBase):
    """Supported = has a lowering, and dtypes and devices gint can run (reasons kept)."""

    def __init__(self, device: torch.device | None):
        self.device = device
        self.reasons: dict[torch.fx.Node, str] = {}

    def is_node_supported(self, submodules, node: torch.fx.Node) -> bool:
        reason = lowering.unsupported_reason(node, self.device)
        if reason is not None:
            self.reasons[node] = reason
        return reason is None


@dataclass
class Boundary:
    inputs: list[torch.fx.Node]
    outputs: list[torch.fx.Node]


def boundary(nodes: list[torch.fx.Node], pending: frozenset = frozenset()) -> Boundary:
    """Tensors flowing into and out of ``nodes`` (in graph order). Users in ``pending``
    (nodes that may still join) do not make a node an output."""
    inside = set(nodes)
    inputs: dict[torch.fx.Node, None] = {}
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in inside:
                inputs[arg] = None
    outputs = [n for n in nodes if any(user not in inside and user not in pending for user in n.users)]
    return Boundary(list(inputs), outputs)


def build_stores(nodes: list[torch.fx.Node], edge: Boundary, rows: RowShape | None = None) -> list[expr.Store]:
    """The expression stores of a subgraph: inputs are slots 0.., outputs follow. In a
    row program (``rows``), outputs of one value per row are marked ``per_row``."""
    env: dict[torch.fx.Node, expr.Node] = {arg: expr.load(slot) for slot, arg in enumerate(edge.inputs)}
    exact = promotion.needs_exact(nodes, lowering.tensor_meta)
    for node in nodes:
        env[node] = lowering.lower_node(node, env)
        if node in exact:
            env[node] = promotion.rounded(env[node], lowering.tensor_meta(node).dtype)
    first = len(edge.inputs)
    stores = []
    for k, out in enumerate(edge.outputs):
        meta = lowering.tensor_meta(out)
        per_row = rows is not None and rows.kind(meta.shape) in ("keep", "drop")
        stores.append(expr.Store(first + k, without_final_rounding(env[out], meta.dtype), per_row=per_row))
    return stores


def violation(nodes: list[torch.fx.Node], max_tensors: int, pending: frozenset = frozenset()) -> str | None:
    """Why ``nodes`` cannot be one gint subgraph (None: they can), assuming the
    ``pending`` nodes will join it too."""
    edge = boundary(nodes, pending)
    count = len(edge.inputs) + len(edge.outputs)
    if count > max_tensors:
        return f"{count} tensors cross the boundary (at most {max_tensors})"
    rows = RowShape.of(nodes, edge.inputs)
    if isinstance(rows, str):
        return rows
    if rows is None:
        metas = [lowering.tensor_meta(n) for n in edge.inputs + edge.outputs]
        try:
            domain = tuple(torch.broadcast_shapes(*(m.shape for m in metas)))
        except RuntimeError:
            return "tensor shapes do not broadcast together"
        for out in edge.outputs:
            if tuple(lowering.tensor_meta(out).shape) != domain:
                return f"{out.name} has shape {tuple(lowering.tensor_meta(out).shape)}, not the domain {domain}"
    try:
        rowcode.schedule_any(build_stores(nodes, edge, rows))
    except stackcode.StackDepthError as error:
        return str(error)
    except lowering.Unsupported as error:
        return str(error)
    return None


class GraphPartitioner:
    """Partitions an ATen FX graph into gint subgraphs and eager nodes."""

    def __init__(self, gm: torch.fx.GraphModule, *, max_tensors: int = 8, device: torch.device | None = None):
        self.gm = gm
        self.max_tensors = max_tensors
        self.support = GintOperatorSupport(device)

    def plan(self) -> Plan:
        proposer = CapabilityBasedPartitioner(self.gm, self.support, allows_single_node_partition=True)
        order = {node: i for i, node in enumerate(self.gm.graph.nodes)}
        proposed = sorted(
            (sorted(p.nodes, key=order.__getitem__) for p in proposer.propose_partitions()),
            key=lambda nodes: order[nodes[0]],
        )
        eager = {n: why for n, why in self.support.reasons.items() if n.op == "call_function"}
        plan = Plan([], eager)
        for nodes in proposed:
            self._split(nodes, plan)
        for node in plan.fallback:
            log.debug("gint: %s (%s) runs eagerly: %s", node.name, node.target, plan.fallback[node])
        for i, part in enumerate(plan.partitions):
            log.debug("gint: subgraph %d: %s", i, [n.name for n in part])
        return plan

    def without(self, plan: Plan, removed: dict[torch.fx.Node, str]) -> Plan:
        """``plan`` with the ``removed`` nodes eager (for the reason each maps to): a
        partition that held any is cut where they were, and each piece split again into
        valid runs (a piece on either side of a removed node cannot depend on it through
        the other, so no cycle forms)."""
        if not removed:
            return plan
        result = Plan([], {**plan.fallback, **removed})
        for nodes in plan.partitions:
            if not any(node in removed for node in nodes):
                result.partitions.append(nodes)
                continue
            piece: list[torch.fx.Node] = []
            for node in [*nodes, None]:
                if node is None or node in removed:
                    if piece:
                        self._split(piece, result)
                    piece = []
                else:
                    piece.append(node)
        return result

    def _split(self, nodes: list[torch.fx.Node], plan: Plan) -> None:
        """Cut ``nodes`` (topological order) into consecutive valid runs.

        A run grows while it would be valid if the rest of the group joined it too
        (so an intermediate that only later nodes consume is not yet an output); then
        nodes come off its end until it is valid on its own.
        """
        remaining = list(nodes)
        while remaining:
            size = self._valid_alone(remaining, self._longest_prefix(remaining))
            if size == 0:
                node = remaining.pop(0)
                plan.fallback[node] = violation([node], self.max_tensors) or "cannot join a valid subgraph"
                continue
            run, remaining = remaining[:size], remaining[size:]
            edge = boundary(run)
            if not edge.inputs or not edge.outputs:  # nothing to iterate over, or nothing to store
                why = "computes only constants (reads no tensor)" if not edge.inputs else "nothing uses its results"
                for node in run:
                    plan.fallback[node] = why
                continue
            plan.partitions.append(run)

    def _valid_alone(self, remaining: list[torch.fx.Node], size: int, steps: int = 8) -> int:
        """The longest prefix of ``remaining[:size]`` valid on its own (0: none): cut back
        one node at a time for ``steps`` nodes (typical runs end there), then by bisecting
        (O(log n) checks; a chain of 80 steps with softmaxes re-scheduled its row program
        for every node cut, 3.3 s of partitioning on the CPU machine). Where validity is
        not monotone in the prefix, the bisection may settle on a shorter valid run than
        the longest: still valid, never longer than checked."""

        def valid(n: int) -> bool:
            return violation(remaining[:n], self.max_tensors) is None

        for _ in range(steps):
            if size == 0 or valid(size):
                return size
            size -= 1
        return size if size == 0 or valid(size) else _bisect(0, size, valid)

    def _longest_prefix(self, remaining: list[torch.fx.Node]) -> int:
        """The longest prefix of ``remaining`` that is valid if the rest joins it too.

        Galloping then bisecting: O(log n) checks of O(n) each, where growing one node at
        a time re-checked every prefix (quadratic: 43.6 s of gint's time for a 2,000-node
        chain). Exact where validity is monotone in the prefix, as the tensor count is
        (with the rest pending, a prefix's outputs are the nodes used outside the whole
        group: a set that only grows) and the shape rules are; where it is not (the stack
        depth, in principle) the prefix found is still valid, and the run is then cut
        back until it is valid on its own."""

        def valid(size: int) -> bool:
            return violation(remaining[:size], self.max_tensors, frozenset(remaining[size:])) is None

        n = len(remaining)
        if not valid(1):
            return 0
        good, step, bad = 1, 1, None
        while good < n:
            probe = min(n, good + step)
            if valid(probe):
                good, step = probe, step * 2
            else:
                bad = probe
                break
        if bad is None:
            return good
        good = _bisect(good, bad, valid)
        log.debug("gint: subgraph ends before %s", remaining[good].name)
        return good


def _bisect(good: int, bad: int, valid) -> int:
    """A size between ``good`` (valid) and ``bad`` (not) whose next one is not valid."""
    while bad - good > 1:
        middle = (good + bad) // 2
        if valid(middle):
            good = middle
        else:
            bad = middle
    return good
