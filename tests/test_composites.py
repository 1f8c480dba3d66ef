"""Operators eager runs fused stay whole until gint takes them (issue 30,
``gint.conductor.composites``): softmax, layer_norm and their backwards are traced
whole, expanded into their decomposition for gint, put back whole where gint runs none
of them, and a declined subgraph's eager twin calls the fused operator. Results against
eager PyTorch on random data, forward and backward, static and symbolic sizes."""

import pytest
import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._python_dispatch import TorchDispatchMode

import gint
from gint.conductor import choice, composites, register_backend
from gint.conductor.backend import decompositions, tracing_table
from gint.conductor.report import Report, recording

register_backend()
aten = torch.ops.aten


class OpsSeen(TorchDispatchMode):
    """The ATen operators that ran (eager kernels), in order."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def norm_softmax(x, w, b):
    y = F.layer_norm(x, (x.shape[-1],), w, b)
    return torch.softmax(y * 2.0, -1) + F.log_softmax(y, -1)


def norm_then_softmax(x, w, b):
    return torch.softmax(F.layer_norm(x, (x.shape[-1],), w, b) * 2.0, -1)


def pointwise_composites(x, y, z):
    return torch.addcmul(x, y, z, value=0.5) + torch.lerp(x, y, 0.3) + torch.addcdiv(x, y, z.abs() + 1)


def _inputs(device, rows, width, dtype=torch.float32):
    x = torch.randn(rows, 3, width, device=device).to(dtype)
    return x, torch.randn(width, device=device).to(dtype), torch.randn(width, device=device).to(dtype)


@pytest.mark.parametrize("fn", [norm_softmax, pointwise_composites])
def test_expand_replaces_each_composite_by_its_decomposition(fn):
    args = _inputs("cpu", 4, 40)
    if fn is pointwise_composites:
        args = tuple(torch.randn(4, 3, 40) for _ in range(3))
    gm = make_fx(fn, decomposition_table=tracing_table(), tracing_mode="fake")(*args)
    whole = [n.target for n in gm.graph.nodes if n.target in composites.COMPOSITE_OVERLOADS]
    assert whole, "the trace kept no composite whole"
    found = composites.expand(gm, decompositions())
    assert len(found) == len(whole)
    assert not [n for n in gm.graph.nodes if n.target in composites.COMPOSITE_OVERLOADS]
    for composite in found:
        assert composite.members and all(m.graph is gm.graph for m in composite.members)
    gm.recompile()
    torch.testing.assert_close(gm(*args), fn(*args))
    # and back whole: nothing of them in gint
    restored = composites.restore(gm, found, set())
    assert set(restored.values()) and sorted(str(n.target) for n in set(restored.values())) == sorted(map(str, whole))
    gm.graph.lint()
    gm.recompile()
    torch.testing.assert_close(gm(*args), fn(*args))


@pytest.mark.parametrize("width", [40, 700])  # 700: rows longer than a simulator chunk
def test_norms_run_in_gint_after_expansion(target, width):
    args = _inputs(target.device, 5, width)
    torch._dynamo.reset()
    report = gint.explain(norm_softmax, *args)
    # a composite the partitions would cut in two (the stack or the tensor limit) runs whole
    assert all("no one gint subgraph holds whole" in f.reason for f in report.fallback), str(report)
    assert report.coverage >= 0.9, str(report)
    ops = [op for sub in report.subgraphs for op in sub.ops]
    assert "aten.amax.default" in ops and "aten._softmax.default" not in ops
    torch.testing.assert_close(torch.compile(norm_softmax, backend="gint")(*args), norm_softmax(*args))


def test_composites_gint_does_not_take_run_whole(target):
    """float64: gint computes in float32, so the norms stay eager, as eager's own kernels."""
    args = _inputs(target.device, 4, 24, torch.float64)
    torch._dynamo.reset()
    report = gint.explain(norm_softmax, *args)
    eager_ops = {f.op for f in report.fallback}
    assert {"aten.native_layer_norm.default", "aten._softmax.default", "aten._log_softmax.default"} <= eager_ops
    assert "aten.amax.default" not in eager_ops, str(report)
    torch._dynamo.reset()
    fast = torch.compile(norm_softmax, backend="gint")
    fast(*args)
    with OpsSeen() as seen:
        got = fast(*args)
    assert aten._softmax.default in seen.ops and aten.amax.default not in seen.ops
    torch.testing.assert_close(got, norm_softmax(*args))


def test_a_declined_subgraph_runs_the_fused_operators(target, monkeypatch):
    monkeypatch.setattr(choice, "timer", lambda run_gint, run_eager: (choice.Timing.flat(2.0, 1.0), run_gint(), run_eager()))
    args = _inputs(target.device, 6, 33)
    torch._dynamo.reset()
    with recording(Report()) as report:
        fast = torch.compile(norm_then_softmax, backend="gint")
        first = fast(*args)
    assert sum(sub.callable.eager.whole for sub in report.subgraphs) == 2  # layer_norm and softmax, whole
    launches = gint.counters()["launches"]
    with OpsSeen() as seen:
        got = fast(*args)
    assert gint.counters()["launches"] == launches  # eager ran it
    assert aten.native_layer_norm.default in seen.ops and aten._softmax.default in seen.ops
    assert aten.amax.default not in seen.ops and aten.rsqrt.default not in seen.ops
    torch.testing.assert_close(got, norm_then_softmax(*args))
    torch.testing.assert_close(first, norm_then_softmax(*args))


def test_a_composite_split_over_gint_and_eager_runs_decomposed():
    """A twin holding only part of a composite replays the part's own nodes."""
    from gint.conductor.fallback import EagerNodes

    args = _inputs("cpu", 3, 16)
    gm = make_fx(norm_softmax, decomposition_table=tracing_table(), tracing_mode="fake")(*args)
    found = composites.expand(gm, decompositions())
    compute = [n for n in gm.graph.nodes if n.op == "call_function"]
    layer_norm = next(c for c in found if c.target == aten.native_layer_norm.default)
    part = layer_norm.members[1:]  # all but its first node
    inside = set(part)
    inputs = list(dict.fromkeys(a for n in part for a in n.all_input_nodes if a not in inside))
    outputs = [n for n in part if any(u not in inside for u in n.users)]
    twin = EagerNodes(part, inputs, outputs, found)
    assert twin.whole == 0 and len(compute) > len(part)
    full = EagerNodes(layer_norm.members, [n for n in layer_norm.inputs()], layer_norm.results[:1], found)
    assert full.whole == 1
    x, w, b = args
    torch.testing.assert_close(full(x, w, b)[0], F.layer_norm(x, (16,), w, b))


def test_a_composite_no_one_subgraph_holds_runs_whole(target):
    """layer_norm's backward needs a row program (the input's gradient) and column sums
    (the weight's and bias's): no one subgraph holds it, so it runs as eager's kernel."""
    torch.manual_seed(0)
    x = torch.randn(12, 40, device=target.device, requires_grad=True)
    w = torch.randn(40, device=target.device, requires_grad=True)
    b = torch.randn(40, device=target.device, requires_grad=True)

    def fn(x, w, b):
        return torch.tanh(F.layer_norm(x * 2.0, (40,), w, b)).sum()

    torch._dynamo.reset()
    with recording(Report()) as report:
        loss = torch.compile(fn, backend="gint")(x, w, b)
        with OpsSeen() as seen:
            loss.backward()
    assert aten.native_layer_norm_backward.default in seen.ops
    reasons = [f.reason for f in report.fallback if f.op == "aten.native_layer_norm_backward.default"]
    assert reasons and "no one gint subgraph holds whole" in reasons[0]
    got = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    fn(x, w, b).backward()
    for g, t in zip(got, (x, w, b)):
        torch.testing.assert_close(g, t.grad, rtol=1e-4, atol=1e-5)


def test_training_gradients_match_eager(target):
    """Forward and backward composites (layer_norm, softmax and their backwards, gelu's)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(24, 48), torch.nn.GELU(), torch.nn.LayerNorm(48),
                                torch.nn.Softmax(-1)).to(target.device)
    x = torch.randn(10, 24, device=target.device)
    grad = torch.randn(10, 48, device=target.device)
    torch._dynamo.reset()
    with recording(Report()) as report:
        out = torch.compile(model, backend="gint")(x)
        out.backward(grad)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).backward(grad)
    for g, want in zip(got, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-5)
    ops = {op for sub in report.subgraphs for op in sub.ops}
    assert not ops & {str(op) for op in composites.COMPOSITE_OVERLOADS}
    assert report.coverage > 0.5, str(report)


def test_symbolic_sizes(target):
    torch._dynamo.reset()
    fast = torch.compile(norm_softmax, backend="gint", dynamic=True)
    for rows, width in [(3, 20), (5, 37), (2, 90)]:
        args = _inputs(target.device, rows, width)
        torch.testing.assert_close(fast(*args), norm_softmax(*args))


def test_16_bit(target):
    args = _inputs(target.device, 4, 64, torch.bfloat16)
    torch._dynamo.reset()
    got = torch.compile(norm_softmax, backend="gint")(*args)
    torch.testing.assert_close(got, norm_softmax(*args), rtol=2e-2, atol=2e-2)


def _convnet(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.GroupNorm(2, 8),
        torch.nn.SiLU(), torch.nn.InstanceNorm2d(8, affine=True), torch.nn.Tanh(),
    ).to(device)
    with torch.no_grad():  # running statistics other than 0 and 1
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model.eval()


@pytest.mark.parametrize("dynamic", [False, True])
def test_inference_norms_run_in_gint(target, dynamic):
    """Batch norm in eval mode runs in gint (per-channel factors, then one pass); group and
    instance norm need their statistics (a reduction) in a subgraph of their own, so they
    run whole, as eager's kernels (``composites.split``)."""
    model = _convnet(target.device)
    torch._dynamo.reset()
    fast = torch.compile(model, backend="gint", dynamic=dynamic)
    for size in (10, 7):
        x = torch.randn(2, 3, size, size, device=target.device)
        with torch.no_grad():
            torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
    with torch.no_grad():
        report = gint.explain(model, torch.randn(2, 3, 10, 10, device=target.device))
    eager_ops = {f.op for f in report.fallback}
    whole = {"aten.native_group_norm.default", "aten._native_batch_norm_legit.no_stats"}
    assert eager_ops == {"aten.convolution.default", "aten.repeat.default", *whole}, str(report)
    assert all("holds whole" in f.reason for f in report.fallback if f.op in whole)


def test_inference_norms_gint_does_not_take_stay_whole(target):
    model = _convnet(target.device).double()
    x = torch.randn(2, 3, 9, 9, device=target.device, dtype=torch.float64)
    torch._dynamo.reset()
    with torch.no_grad():
        report = gint.explain(model, x)
        got = torch.compile(model, backend="gint")(x)
    eager_ops = {f.op for f in report.fallback}
    assert {"aten._native_batch_norm_legit_no_training.default", "aten.native_group_norm.default",
            "aten._native_batch_norm_legit.no_stats"} <= eager_ops, str(report)
    torch.testing.assert_close(got, model(x))
