"""The partitioner finds each run's longest valid prefix by galloping and bisecting
(issue 17): the same partitions as growing one node at a time where validity is
monotone, in O(log n) checks per run instead of one per node."""

import random

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from gint.conductor import GraphPartitioner
from gint.conductor.partitioner import violation


def _linear_prefix(remaining, max_tensors):
    """The old way: grow one node at a time until a prefix is invalid."""
    size = 0
    while size < len(remaining):
        if violation(remaining[: size + 1], max_tensors, frozenset(remaining[size + 1 :])) is not None:
            break
        size += 1
    return size


def _random_program(seed: int):
    rng = random.Random(seed)
    ops = [
        lambda a, b: a + b,
        lambda a, b: a * b,
        lambda a, b: torch.sigmoid(a) - b,
        lambda a, b: torch.maximum(a, b),
        lambda a, b: a * 0.5 + 1,
    ]
    steps = [(rng.randrange(len(ops)), rng.randrange(8), rng.randrange(8)) for _ in range(rng.randrange(5, 40))]

    def f(*xs):
        values = list(xs)
        for op, i, j in steps:
            values.append(ops[op](values[-1 - i % len(values)], values[-1 - j % len(values)]))
        return values[-1], values[len(values) // 2]

    return f


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_tensors", [3, 4, 8])
def test_galloping_finds_the_same_partitions_as_growing_one_node_at_a_time(seed, max_tensors, monkeypatch):
    xs = [torch.randn(4, 5) for _ in range(4)]
    gm = make_fx(_random_program(seed))(*xs)
    fast = GraphPartitioner(gm, max_tensors=max_tensors, device=torch.device("cpu")).plan()
    monkeypatch.setattr(GraphPartitioner, "_longest_prefix", lambda self, rest: _linear_prefix(rest, self.max_tensors))
    slow = GraphPartitioner(gm, max_tensors=max_tensors, device=torch.device("cpu")).plan()
    assert [[n.name for n in p] for p in fast.partitions] == [[n.name for n in p] for p in slow.partitions]
    assert {n.name: r for n, r in fast.fallback.items()} == {n.name: r for n, r in slow.fallback.items()}


def test_a_2000_op_chain_plans_as_one_partition():
    def f(t, y):
        for _ in range(500):
            t = t * 0.5 + y
            t = torch.sigmoid(t) - y
        return t

    gm = make_fx(f)(torch.randn(8), torch.randn(8))
    plan = GraphPartitioner(gm, device=torch.device("cpu")).plan()
    assert [len(p) for p in plan.partitions] == [2000]


def _invariants_reference(values, base):
    """The row scheduler's hoisting rule as first written: a walk per node."""
    from gint.host.expr import REDUCE, is_uniform, postorder

    available = set(base)
    found, stack, seen = {}, list(values), set()
    while stack:
        node = stack.pop()
        if node in seen or node in available or node.is_leaf:
            continue
        seen.add(node)
        reductions = [n for n in postorder([node], stop=available) if n.op == REDUCE]
        if not reductions and is_uniform(node):
            found[node] = None
        else:
            stack.extend(node.args)
    return list(found)


def test_row_invariants_match_the_reference(monkeypatch):
    """The one-pass hoisting of row-uniform values finds what a walk per node found, on
    chained softmaxes, norms and variances (the walk per node was quadratic)."""
    import gint
    from gint.host import rowcode

    calls = []
    real = rowcode._invariants

    def recording(values, base, uniform):
        result = real(values, base, uniform)
        calls.append((list(values), list(base), result))
        return result

    monkeypatch.setattr(rowcode, "_invariants", recording)

    def softmaxes(x, y):
        for _ in range(4):
            x = torch.softmax(x * 0.5 + y, -1) - y
        return x

    def norms(x, y):
        z = torch.nn.functional.layer_norm(x, (x.shape[-1],)) * y
        return (z - z.mean(-1, keepdim=True)) / (z.var(-1, keepdim=True) + 1e-5).sqrt() + z.amax(-1, keepdim=True)

    for fn in (softmaxes, norms):
        torch._dynamo.reset()
        gint.explain(fn, torch.randn(4, 40), torch.randn(4, 40))
    assert len(calls) > 10
    for values, base, result in calls:
        assert result == _invariants_reference(values, base)


def test_the_compile_time_bench_reports_each_pass(target):
    if target.name != "sim":
        pytest.skip("measured on the CPU machine")
    from gint.bench import compile_time

    row = compile_time.measure(30, 8, target.device)
    assert row["aten_nodes"] > 60 and row["coverage"] == 1.0 and row["subgraphs"] >= 1
    assert row["partition_s"] > 0 and row["compile partitions_s"] > 0 and row["trace (make_fx)_s"] > 0
    assert row["first_call_s"] >= row["compile_forward_s"] > 0


def _softmax_chain(steps: int):
    def f(t, y):
        for i in range(steps):
            t = t * 0.5 + y if i % 2 else torch.sigmoid(t) - y
            if i % 8 == 7:
                t = torch.softmax(t, -1)
        return t

    return f


def test_cutting_back_bisects_after_a_few_nodes(monkeypatch):
    """A run valid only with the rest of its group is cut back one node at a time for a
    few nodes, then by bisecting: a chain with a softmax every 8 steps (row programs)
    checked 246 prefixes at 80 steps; the result is the same as cutting one at a time."""
    from gint.conductor import partitioner
    from gint.conductor.backend import decompositions

    x, y = torch.randn(4, 64), torch.randn(4, 64)
    gm = make_fx(_softmax_chain(80), decomposition_table=decompositions())(x, y)
    checks = []
    real = partitioner.violation

    def counted(*args, **kwargs):
        checks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(partitioner, "violation", counted)
    fast = GraphPartitioner(gm, device=torch.device("cpu")).plan()
    fast_checks = len(checks)
    monkeypatch.setattr(GraphPartitioner, "_valid_alone", lambda self, rest, size: _cut_one_at_a_time(rest, size))
    slow = GraphPartitioner(gm, device=torch.device("cpu")).plan()
    slow_checks = len(checks) - fast_checks
    assert fast_checks < 0.6 * slow_checks, (fast_checks, slow_checks)
    assert [[n.name for n in p] for p in fast.partitions] == [[n.name for n in p] for p in slow.partitions]


def _cut_one_at_a_time(remaining, size):
    from gint.conductor import partitioner

    while size and partitioner.violation(remaining[:size], 8) is not None:
        size -= 1
    return size
