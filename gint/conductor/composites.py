"""Operators eager runs as one fused kernel, kept whole until gint takes them.

Softmax, layer_norm and their backwards run eagerly as one kernel each; decomposed
(amax, sub, exp, sum, div ...) they are five to ten kernels. gint runs the decomposed
operators as one subgraph, but where it does not (an unsupported dtype or layout, a
subgraph ``gint.conductor.choice`` hands to eager because eager ran it faster), the
decomposed nodes each ran as an eager kernel: slower than the model without gint.

So the backend traces these operators whole (``tracing_decompositions``), and the
``expand`` pass replaces each by its decomposition in the ATen graph (the backend's
table, under the graph's own fake mode, so symbolic sizes stay the graph's),
remembering where each came from (``Composite``). After partitioning:
- a composite none of whose nodes went to gint is put back whole (``restore``);
- a partition that holds whole composites gets an eager twin that calls the original
  operator (``gint.conductor.fallback.EagerNodes``): the twin the first-call choice
  times and falls back to is eager's fused kernel, not its decomposition.
An operator whose decomposition cannot be traced stays whole and runs eagerly.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.fx
from torch._guards import detect_fake_mode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils import _pytree as pytree

from gint.conductor.reductions import REDUCING_OPS

log = logging.getLogger("gint")
aten = torch.ops.aten

# Each is one eager kernel, and decomposes into operators gint runs (the backend's
# table holds their decompositions, also where Inductor keeps them whole). The inference
# norms: batch norm in eval mode, group norm, and instance norm (batch norm without
# running statistics); training's arrive decomposed.
COMPOSITES = (
    aten._softmax,
    aten._log_softmax,
    aten._softmax_backward_data,
    aten._log_softmax_backward_data,
    aten.native_layer_norm,
    aten.native_layer_norm_backward,
    aten.gelu_backward,
    aten.silu_backward,
    aten.addcmul,
    aten.addcdiv,
    aten.lerp,
    aten._native_batch_norm_legit_no_training.default,
    aten._native_batch_norm_legit.no_stats,
    aten.native_group_norm.default,
)


def _overloads(ops) -> set:
    """Every overload of each packet; an overload as itself."""
    found = set()
    for op in ops:
        if isinstance(op, torch._ops.OpOverload):
            found.add(op)
        else:
            found.update(getattr(op, name) for name in op.overloads())
    return found


COMPOSITE_OVERLOADS = frozenset(op for op in _overloads(COMPOSITES) if not op._schema.is_mutable)


def tracing_decompositions(table: dict) -> dict:
    """``table`` without the composites: what the backend traces with."""
    return {op: fn for op, fn in table.items() if op not in COMPOSITE_OVERLOADS}


@dataclass(eq=False)
class Composite:
    """One whole operator of the traced graph, and the nodes its decomposition became."""

    target: torch._ops.OpOverload
    args: tuple  # the original arguments (graph nodes stay nodes)
    kwargs: dict
    members: list[torch.fx.Node]  # the decomposition's nodes, in graph order
    results: list[torch.fx.Node | None]  # result k of the operator (None: unused)
    metas: list[dict]  # result k's node meta (the operator's node meta for one result)
    tuple_result: bool

    def inputs(self) -> list[torch.fx.Node]:
        return [a for a in pytree.tree_leaves((self.args, self.kwargs)) if isinstance(a, torch.fx.Node)]

    def replayable(self) -> bool:
        """Whether the original operator can be called again on its inputs' values (its
        arguments hold tensors or plain values, no symbolic size read from the graph)."""
        return all(isinstance(n.meta.get("val"), torch.Tensor) for n in self.inputs())


def expand(gm: torch.fx.GraphModule, table: dict) -> list[Composite]:
    """Replace each composite operator in ``gm`` by its decomposition under ``table``
    (the backend's full one), in place."""
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in COMPOSITE_OVERLOADS]
    if not nodes:
        return []
    fake_mode = detect_fake_mode([n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"])
    if fake_mode is None:
        return []
    composites = []
    traced_for: dict = {}  # one trace per operator and static signature (a model's layers repeat)
    for node in nodes:
        key = _signature(node)
        try:
            traced = traced_for[key] if key in traced_for else _decomposition(node, table, fake_mode)
        except Exception as error:  # noqa: BLE001 - the operator stays whole and runs eagerly
            log.debug("gint: %s stays whole: its decomposition did not trace: %s", node.target, error)
            traced = None
        if key is not None:
            traced_for[key] = traced
        if traced is not None:
            composites.append(_inline(gm, node, traced))
    return composites


def _signature(node: torch.fx.Node):
    """A hashable key for ``node``'s operator, argument metadata and read results (None
    where a size is symbolic)."""
    parts = [node.target, tuple(sorted(_used_results(node) or ()))]
    for value in pytree.tree_leaves((node.args, node.kwargs)):
        if isinstance(value, torch.fx.Node):
            val = value.meta.get("val")
            if not isinstance(val, torch.Tensor):
                return None
            sizes = (*val.shape, *val.stride())
            if not all(isinstance(n, int) for n in sizes):
                return None
            parts.append((tuple(val.shape), val.stride(), val.dtype, val.device))
        elif isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
            return None
        else:
            parts.append((type(value), value))
    return tuple(parts)


def _decomposition(node: torch.fx.Node, table: dict, fake_mode) -> torch.fx.GraphModule | None:
    """The decomposition of ``node``'s operator as a graph over its tensor arguments,
    its outputs those of the operator (unused ones None); None where it cannot be
    inlined faithfully."""
    values = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: n.meta.get("val"))
    flat, spec = pytree.tree_flatten(values)
    tensor_at = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]
    if any(isinstance(v, torch.SymInt | torch.SymFloat | torch.SymBool) for v in flat):
        return None  # a symbolic number argument: it would be baked into the graph
    used = _used_results(node)
    if used is None:
        return None

    def call(*tensors):
        leaves = list(flat)
        for i, t in zip(tensor_at, tensors):
            leaves[i] = t
        args, kwargs = pytree.tree_unflatten(leaves, spec)
        result = node.target(*args, **kwargs)
        if isinstance(result, tuple):
            return tuple(r if k in used else None for k, r in enumerate(result))
        return result

    with fake_mode:
        traced = make_fx(call, decomposition_table=table, tracing_mode="real")(*[flat[i] for i in tensor_at])
    for sub in traced.graph.nodes:
        if sub.op == "call_function" and sub.target in COMPOSITE_OVERLOADS:
            return None  # the table did not decompose it (a dtype its decomposition skips)
        if sub.op == "get_attr":
            return None  # a constant tensor the decomposition made: not worth inlining
        if sub.op == "call_function" and getattr(getattr(sub.target, "_schema", None), "is_mutable", False):
            return None  # the decomposition writes a tensor: keep the operator whole
        if any(isinstance(a, torch.SymInt | torch.SymFloat | torch.SymBool) for a in pytree.tree_leaves(sub.args)):
            return None
    return traced


def _used_results(node: torch.fx.Node) -> set[int] | None:
    """Which results of a tuple-valued ``node`` its users read ({0} for one tensor);
    None where a user reads it other than by index."""
    if not isinstance(node.meta.get("val"), tuple | list):
        return {0}
    used = set()
    for user in node.users:
        if user.target is not operator.getitem or not isinstance(user.args[1], int):
            return None
        used.add(user.args[1])
    return used


def _inline(gm: torch.fx.GraphModule, node: torch.fx.Node, traced: torch.fx.GraphModule) -> Composite:
    graph = gm.graph
    tensors = iter(a for a in pytree.tree_leaves((node.args, node.kwargs)) if isinstance(a, torch.fx.Node))
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    members = []
    output = None
    with graph.inserting_before(node):
        for sub in traced.graph.nodes:
            if sub.op == "placeholder":
                env[sub] = next(tensors)
            elif sub.op == "output":
                output = sub.args[0]
            else:
                new = graph.node_copy(sub, lambda n: env[n])
                env[sub] = new
                members.append(new)
    tuple_result = isinstance(node.meta.get("val"), tuple | list)
    if tuple_result:
        results = [env[o] if isinstance(o, torch.fx.Node) else None for o in output]
        metas = [{} for _ in results]
        for user in list(node.users):
            k = user.args[1]
            metas[k] = dict(user.meta)
            user.replace_all_uses_with(results[k])
            graph.erase_node(user)
    else:
        results, metas = [env[output]], [dict(node.meta)]
        node.replace_all_uses_with(results[0])
    composite = Composite(node.target, node.args, dict(node.kwargs), [], results, metas, tuple_result)
    graph.erase_node(node)
    # the decomposition may compute what no result reads (e.g. layer_norm's mean)
    live = set(r for r in results if r is not None)
    for member in reversed(members):
        if member in live or member.users or member.op != "call_function":
            live.add(member)
        elif not getattr(member.target, "_schema", None) or not member.target._schema.is_mutable:
            graph.erase_node(member)
    composite.members = [m for m in members if m in live]
    return composite


def split(composites: Iterable[Composite], partitions: list[list[torch.fx.Node]]) -> dict[torch.fx.Node, str]:
    """The members of each composite with a reduction that the partitions do not hold
    whole, in one partition: {member: why}. Such a composite in pieces is several of gint's
    reduction programs (issue 16: 0.1 to 0.4 of copy today) where eager's fused kernels
    run at bandwidth, and where the first-call choice declines a piece, that piece's eager
    twin runs the decomposed nodes, one kernel each. On the H100 (transformers' BERT, one
    fp32 training step): the loss backward in two declined pieces took 474 us of device
    time where eager's fused kernels take 150, and each layer_norm backward, a row program
    and column sums in gint, ~50 us where eager's takes ~10. Whole, each is eager's fused
    kernel. Pointwise pieces (eval batch norm: per-channel factors, then one streaming
    pass) stay in gint."""
    where = {node: k for k, nodes in enumerate(partitions) for node in nodes}
    loose = {}
    for composite in composites:
        homes = {where.get(member) for member in composite.members}
        if len(homes) > 1 and any(member.target in REDUCING_OPS for member in composite.members):
            why = f"part of {composite.target}, which no one gint subgraph holds whole: it runs whole, eagerly"
            loose.update((member, why) for member in composite.members)
    return loose


def restore(gm: torch.fx.GraphModule, composites: Iterable[Composite], gint_nodes: set) -> dict:
    """Put back whole each composite none of whose nodes is in ``gint_nodes``; returns
    {member: restored node} for the ones put back."""
    replaced = {}
    renamed: dict[torch.fx.Node, torch.fx.Node] = {}  # a restored composite's result -> its new node
    graph = gm.graph
    for composite in composites:
        if not composite.members or any(m in gint_nodes for m in composite.members):
            continue
        first = composite.members[0]
        args, kwargs = torch.fx.node.map_arg((composite.args, composite.kwargs), lambda n: renamed.get(n, n))
        with graph.inserting_before(first):
            whole = graph.call_function(composite.target, args, kwargs)
            if composite.tuple_result:
                whole.meta["val"] = tuple(m.get("val") for m in composite.metas)
                outs = []
                for k, result in enumerate(composite.results):
                    if result is None:
                        outs.append(None)
                        continue
                    item = graph.call_function(operator.getitem, (whole, k))
                    item.meta = dict(composite.metas[k])
                    outs.append(item)
            else:
                whole.meta = dict(composite.metas[0])
                outs = [whole]
        for result, out in zip(composite.results, outs):
            if result is not None:
                result.replace_all_uses_with(out)
                renamed[result] = out
        for member in reversed(composite.members):
            graph.erase_node(member)
            replaced[member] = whole
    return replaced
