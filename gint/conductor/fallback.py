"""A partition's ATen nodes as a plain eager callable: what a compiled subgraph runs
when the kernel cannot take a call's tensor layout (a new shape whose reduced dims no
longer form one run in memory, say), or where eager measured faster. It calls the
nodes' targets in graph order from a small generated Python function (one line a node,
every constant argument bound by name), so a call costs the ATen calls and little
else: replaying them through a generic argument walk cost ~3x the host time of the
ops themselves (what a host-bound model pays on every declined subgraph)."""

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


def _render(value, constants: list) -> str:
    """Python source for ``value``: a reference is ``v<index>``, a list or tuple holding one
    is written out, anything else is a named constant."""
    if isinstance(value, _Ref):
        return f"v{value.index}"
    if isinstance(value, list | tuple) and any(isinstance(v, _Ref | list | tuple | dict) for v in value):
        items = ", ".join(_render(v, constants) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items},)"
    if isinstance(value, dict) and value:
        return "{" + ", ".join(f"{_render(k, constants)}: {_render(v, constants)}" for k, v in value.items()) + "}"
    constants.append(value)
    return f"c{len(constants) - 1}"


def _generate(steps, n_inputs: int, outputs: tuple[int, ...]):
    """``run(v0, v1, ...)``: the steps in order, returning the outputs as a tuple."""
    constants: list = []
    names = {}
    lines = [f"def run({', '.join(f'v{i}' for i in range(n_inputs))}):"]
    for k, (target, args, kwargs) in enumerate(steps):
        # an ATen operator is called through the builtin its OpOverload wraps: the same
        # call without OpOverload.__call__'s Python frame (1.67 vs 2.14 us on the CPU machine)
        names[f"t{k}"] = target._op if isinstance(target, torch._ops.OpOverload) else target
        call = [_render(a, constants) for a in args]
        call += [f"{key}={_render(v, constants)}" for key, v in kwargs.items()]
        lines.append(f"    v{n_inputs + k} = t{k}({', '.join(call)})")
    lines.append(f"    return ({''.join(f'v{i}, ' for i in outputs)})")
    scope = {**names, **{f"c{j}": c for j, c in enumerate(constants)}}
    exec(compile("\n".join(lines), "<gint eager twin>", "exec"), scope)  # noqa: S102 - our own source
    return scope["run"]


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
        self._run = _generate(steps, len(inputs), tuple(index[node] for node in outputs))
        self.whole = sum(1 for k in index if not isinstance(k, torch.fx.Node))  # composites run whole

    def __call__(self, *inputs):
        return self._run(*inputs)
