"""Sizes used as numbers (SymInts) on both sides of the partition (issue 31, item 2).

``materialize_symbolic_scalars`` gives lowered nodes a 0-d tensor where they took a
symbolic size, before the partitioner decides where each node runs. A node that stays
eager must get its number back: GroupNorm's backward at a second input size handed an
eager ``scalar_tensor`` a Tensor (a RuntimeError in the user's program), and an eager
``int_tensor * x.shape[0]`` came out float32 instead of int64 (a silent wrong dtype,
and rounding past 2**24). Each test failed on main 4e310d2."""

import pytest
import torch
import torch.nn as nn

import gint
from gint.conductor import register_backend

register_backend()


def _conv_then(norm: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), norm, nn.ReLU())


NORMS = {
    "batch": lambda: _conv_then(nn.BatchNorm2d(4)),
    "group": lambda: _conv_then(nn.GroupNorm(2, 4)),
    "group1": lambda: _conv_then(nn.GroupNorm(1, 4)),  # the case: one group
    "instance": lambda: _conv_then(nn.InstanceNorm2d(4, affine=True)),
    "layer": lambda: _conv_then(nn.LayerNorm([4, 8, 8])),
    "rms": lambda: nn.Sequential(nn.Linear(6, 8), nn.RMSNorm(8), nn.ReLU()),
}


def _inputs(name: str, size: int, device) -> torch.Tensor:
    if name == "rms":
        return torch.randn(2, size, 6, device=device)
    if name == "layer":  # the normalized shape is fixed; the batch changes
        return torch.randn(size // 2, 3, 8, 8, device=device)
    return torch.randn(2, 3, size, size, device=device)


@pytest.mark.parametrize("dynamic", [None, True], ids=["dynamic_default", "dynamic_true"])
@pytest.mark.parametrize("name", sorted(NORMS))
def test_norm_training_at_two_input_sizes(target, name, dynamic):
    torch.manual_seed(0)
    model = NORMS[name]().to(target.device)
    reference = NORMS[name]().to(target.device)
    reference.load_state_dict(model.state_dict())
    torch._dynamo.reset()
    fast = torch.compile(model, backend="gint", dynamic=dynamic)
    failed = gint.counters()["graphs_failed"]
    for size in (8, 6):
        x = _inputs(name, size, target.device)
        x_fast, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = fast(x_fast), reference(x_ref)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        grad = torch.randn_like(want)
        got.backward(grad)
        want.backward(grad)
        torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
        for (pname, p), q in zip(model.named_parameters(), reference.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=f"{name}: grad of {pname}")
        model.zero_grad()
        reference.zero_grad()
    assert gint.counters()["graphs_failed"] == failed  # compiled by gint, not rescued by the eager path


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_an_integer_times_a_size_stays_an_exact_integer(target, dtype):
    def f(x):
        return x * x.shape[0] + 1

    torch._dynamo.reset()
    fast = torch.compile(f, backend="gint", dynamic=True)
    for n in (5, 7):
        x = torch.arange(n, device=target.device, dtype=dtype) + (2**24 + 1 if dtype == torch.int64 else 0)
        got = fast(x)
        assert got.dtype == dtype
        assert torch.equal(got, f(x))


def test_a_size_in_a_gint_subgraph_still_comes_as_a_tensor(target):
    """The other side: a lowered node that lands in gint keeps its 0-d tensor, so the
    program never holds a size (new sizes compile nothing)."""

    def f(x):
        return (x - x.shape[-1]) * 0.5 + 1

    torch._dynamo.reset()
    fast = torch.compile(f, backend="gint", dynamic=True)
    for n in (5, 9):
        x = torch.randn(3, n, device=target.device)
        torch.testing.assert_close(fast(x), f(x))
    before = gint.counters()["programs_built"]
    x = torch.randn(3, 11, device=target.device)
    torch.testing.assert_close(fast(x), f(x))
    assert gint.counters()["programs_built"] == before


def test_a_failed_compile_gives_every_node_its_number_back(monkeypatch):
    """``compile_forward`` rewrites before partitioning; when it fails, the graph it
    leaves to run eagerly must be the graph it was given."""
    from gint.conductor import backend
    from gint.conductor.options import Options

    def f(x):
        return x * x.shape[0]

    gm = torch.fx.experimental.proxy_tensor.make_fx(f, tracing_mode="symbolic")(torch.randn(5))
    before = [(n.op, str(n.target), tuple(map(str, n.args))) for n in gm.graph.nodes]

    def boom(self, nodes, *options):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(backend.GintCompiler, "compile", boom)
    with pytest.raises(RuntimeError, match="compile failed"):
        backend.compile_forward(gm, options=Options())
    assert any(n.meta.get("gint_symbolic_scalar") for n in gm.graph.nodes) is False
    after = [(n.op, str(n.target), tuple(map(str, n.args))) for n in gm.graph.nodes]
    assert after == before
