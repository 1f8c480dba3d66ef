"""A partition's ATen nodes as a plain eager callable: what a compiled subgraph runs
when the kernel cannot take a call's tensor layout (a new shape whose reduced dims no
longer form one run in memory, say). It replays the nodes' targets in graph order;
nothing is generated or compiled, so building one costs microseconds per node."""

from __future__ import annotations

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
    """``outputs = EagerNodes(nodes, inputs, outputs)(*input_tensors)``, eagerly."""

    def __init__(
        self, nodes: Sequence[torch.fx.Node], inputs: Sequence[torch.fx.Node], outputs: Sequence[torch.fx.Node]
    ):
        index = {node: i for i, node in enumerate(inputs)}
        steps = []
        for node in nodes:
            steps.append((node.target, _template(node.args, index), _template(node.kwargs, index)))
            index[node] = len(index)
        self._steps = tuple(steps)
        self._outputs = tuple(index[node] for node in outputs)

    def __call__(self, *inputs):
        values = list(inputs)
        for target, args, kwargs in self._steps:
            values.append(target(*_fill(args, values), **_fill(kwargs, values)))
        return tuple(values[i] for i in self._outputs)
