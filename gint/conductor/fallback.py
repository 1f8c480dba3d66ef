"""A partition's ATen nodes as a plain eager callable: what a compiled subgraph runs
when the kernel cannot take a call's tensor layout (a new shape whose reduced dims no
longer form one run in memory, say). It replays the nodes' targets in graph order;
nothing is generated or compiled, so building one costs microseconds per node."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch.fx


@dataclass(frozen=True)
class _Ref:
    index: int  # into the values: the subgraph's inputs, then each node's result


def _template(value, index: dict):
    if isinstance(value, torch.fx.Node):
        return _Ref(index[value])
    if isinstance(value, list | tuple):
        return type(value)(_template(v, index) for v in value)
    if isinstance(value, dict):
        return {k: _template(v, index) for k, v in value.items()}
    return value


def _fill(value, values: list):
    if isinstance(value, _Ref):
        return values[value.index]
    if isinstance(value, list | tuple):
        return type(value)(_fill(v, values) for v in value)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


class EagerNodes:
    """``outputs = EagerNodes(nodes, inputs, outputs)(*input_tensors)``, eagerly.

    A composite operator (``gint.conductor.composites``) all of whose nodes are among
    ``nodes`` runs as the one operator it was, eager's fused kernel, not its
    decomposition."""

    def __init__(
        self,
        nodes: Sequence[torch.fx.Node],
        inputs: Sequence[torch.fx.Node],
        outputs: Sequence[torch.fx.Node],
        composites: Sequence = (),
    ):
        inside = set(nodes)
        whole = {}
        for composite in composites:
            if composite.members and composite.replayable() and all(m in inside for m in composite.members):
                whole.update(dict.fromkeys(composite.members, composite))
        index: dict = {node: i for i, node in enumerate(inputs)}  # node -> where its value is
        steps = []

        def step(target, args, kwargs) -> int:
            steps.append((target, _template(args, index), _template(kwargs, index)))
            return len(inputs) + len(steps) - 1

        for node in nodes:
            composite = whole.get(node)
            if composite is not None and composite not in index:
                if all(n in index for n in composite.inputs()):
                    index[composite] = step(composite.target, composite.args, composite.kwargs)
                    for k, result in enumerate(composite.results):
                        if result is not None and composite.tuple_result:
                            index[result] = step(operator.getitem, (_Ref(index[composite]), k), {})
                        elif result is not None:
                            index[result] = index[composite]
                    continue
                whole = {n: c for n, c in whole.items() if c is not composite}  # not all its inputs are here
                composite = None
            if node in index or composite is not None:
                continue  # a result of, or inside, a composite run whole
            index[node] = step(node.target, node.args, node.kwargs)
        self._steps = tuple(steps)
        self._outputs = tuple(index[node] for node in outputs)
        self.whole = sum(1 for k in index if not isinstance(k, torch.fx.Node))  # composites run whole

    def __call__(self, *inputs):
        values = list(inputs)
        for target, args, kwargs in self._steps:
            values.append(target(*_fill(args, values), **_fill(kwargs, values)))
        return tuple(values[i] for i in self._outputs)
