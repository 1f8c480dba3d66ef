"""A ``cat`` of one tensor and empty ones (transformers' first cache update) becomes a
clone that gint fuses (gint.conductor.copies); results, dtypes and strides stay eager's."""

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import gint
from gint.conductor import register_backend
from gint.conductor.copies import single_part_cats

register_backend()
aten = torch.ops.aten


def compiled(fn):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint")


def cats_replaced(run) -> int:
    before = gint.counters()["cats_to_clones"]
    run()
    return gint.counters()["cats_to_clones"] - before


def cache_update(q, k, cos, sin):
    """Llama's shape of it: the rotary keys appended to an empty cache."""
    cache = torch.tensor([], dtype=k.dtype, device=k.device)
    rotated = k * cos + torch.cat((-k[..., k.shape[-1] // 2 :], k[..., : k.shape[-1] // 2]), dim=-1) * sin
    keys = torch.cat([cache, rotated], dim=-2)
    return q * 2.0 + keys, keys


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cache_cat_becomes_part_of_a_subgraph(target, dtype):
    heads, seq, dim = (2, 5, 8) if target.name == "sim" else (16, 512, 64)
    q, k = (torch.randn(3, heads, seq, dim, device=target.device, dtype=dtype) for _ in range(2))
    cos, sin = (torch.randn(1, 1, seq, dim, device=target.device, dtype=dtype) for _ in range(2))
    fn = compiled(cache_update)
    with torch.no_grad():
        assert cats_replaced(lambda: fn(q, k, cos, sin)) == 1
        got = fn(q, k, cos, sin)
    want = cache_update(q, k, cos, sin)
    # eager rounds k * cos and the rotated half * sin to bf16 before adding; gint adds in float32
    tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape and g.stride() == w.stride()
        torch.testing.assert_close(g, w, **tolerance)
    report = gint.explain(cache_update, q, k, cos, sin)
    eager_cats = [f for f in report.fallback if f.op == "aten.cat.default"]
    assert len(eager_cats) == 1  # the rotate_half cat; the cache's is a clone in a subgraph
    assert any("aten.clone.default" in s.ops and len(s.ops) > 1 for s in report.subgraphs)


def test_cat_of_a_transposed_view_keeps_eagers_layout(target):
    x = torch.randn(3, 7, 4, device=target.device)

    def fn(x):
        empty = torch.tensor([], device=x.device)
        return torch.cat([empty, x.transpose(0, 1) + 1.0], dim=1), torch.cat([x.transpose(1, 2), empty], 0)

    got, want = compiled(fn)(x), fn(x)
    for g, w in zip(got, want):
        assert g.stride() == w.stride()
        torch.testing.assert_close(g, w)
    assert not got[1]._is_view() and got[1].data_ptr() != x.data_ptr()


def test_symbolic_sizes_leave_the_cat_alone(target):
    def fn(x):
        return torch.cat([torch.tensor([], device=x.device), x * 2.0], dim=0)

    torch._dynamo.reset()
    fast = torch.compile(fn, backend="gint", dynamic=True)
    for rows in (5, 7):
        x = torch.randn(rows, 3, device=target.device)
        torch.testing.assert_close(fast(x), fn(x))


def test_channels_last_cat(target):
    x = torch.randn(2, 3, 4, 5, device=target.device).to(memory_format=torch.channels_last)

    def fn(x):
        return torch.cat([x[:, :0], x * 2.0], dim=1)

    got, want = compiled(fn)(x), fn(x)
    assert got.stride() == want.stride()
    torch.testing.assert_close(got, want)


def test_graph_pass_rewrites_only_single_part_cats():
    def fn(x, y):
        empty = torch.tensor([])
        one = torch.cat([empty, x], dim=0)  # -> clone
        two = torch.cat([x, y], dim=0)  # two parts: stays
        none_left = torch.cat([x[:0], y[:0]], dim=0)  # nothing left: stays
        promoted = torch.cat([torch.tensor([], dtype=torch.float64), x], dim=0)  # float64 result: stays
        return one, two, none_left, promoted

    x, y = torch.randn(4, 3), torch.randn(2, 3)
    gm = make_fx(fn, tracing_mode="fake")(x, y)
    assert single_part_cats(gm) == 1
    gm.recompile()
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count(aten.cat.default) == 3 and targets.count(aten.clone.default) == 1
    for got, want in zip(gm(x, y), fn(x, y)):
        assert got.dtype == want.dtype and got.stride() == want.stride()
        torch.testing.assert_close(got, want)


def test_training_graph_cat_and_gradients(target):
    x = torch.randn(4, 6, device=target.device, requires_grad=True)
    w = torch.randn(6, device=target.device)

    def fn(x, w):
        keys = torch.cat([torch.tensor([], device=x.device), torch.tanh(x * w)], dim=0)
        return (keys * keys).sum()

    fn_gint = compiled(fn)
    assert cats_replaced(lambda: fn_gint(x, w).backward()) >= 1
    got = x.grad.clone()
    x.grad = None
    fn(x, w).backward()
    torch.testing.assert_close(got, x.grad)


def _clones_left(fn, *args, grad: bool = False) -> tuple[int, object]:
    """Run ``fn`` compiled; how many aten.clone nodes gint's graphs kept, and the result."""
    from gint.conductor import backend

    kept = []
    real = backend.drop_clones

    def spy(gm):
        dropped = real(gm)
        kept.append(sum(1 for n in gm.graph.nodes if n.target is aten.clone.default))
        return dropped

    backend.drop_clones = spy
    try:
        with torch.set_grad_enabled(grad):
            out = compiled(fn)(*args)
    finally:
        backend.drop_clones = real
    return sum(kept), out


def test_eval_dropout_copies_are_dropped(target):
    """Dropout in eval mode traces as a clone: a copy kernel eager never runs."""
    x = torch.randn(target.rows, target.cols, device=target.device)
    w = torch.randn(target.cols, device=target.device)

    def fn(x, w):
        h = torch.nn.functional.dropout(torch.nn.functional.layer_norm(x, (x.shape[-1],), w), 0.1, training=False)
        return (h * 2.0 + 1.0).relu(), torch.nn.functional.dropout(x * w, 0.5, training=False).t()

    kept, (a, b) = _clones_left(fn, x, w)
    assert kept == 0
    want_a, want_b = fn(x, w)
    torch.testing.assert_close(a, want_a)
    torch.testing.assert_close(b, want_b)
    assert b.stride() == want_b.stride()


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.clone(),  # an output: must not alias the input
        lambda x: x.t().clone() * 2.0,  # a transposed source: the clone changes the layout (kept)
        lambda x: ((x + 1.0).clone(), x + 1.0),  # an output again
        lambda x: x[:, 1:].clone() + 1.0,  # a view of an input: the clone's source aliases the caller's tensor
    ],
)
def test_clones_that_matter_stay(target, fn):
    x = torch.randn(target.rows, target.cols, device=target.device)
    kept, got = _clones_left(fn, x)
    assert kept >= 1
    want = fn(x)
    torch.testing.assert_close(got, want)


def test_training_dropout_without_effect_copies_nothing(target):
    """``dropout(p=0)`` in training traces as a clone in AOT autograd's forward graph."""
    x = torch.randn(target.rows, target.cols, device=target.device, requires_grad=True)
    w = torch.randn(target.cols, device=target.device)

    def fn(x, w):
        h = torch.nn.functional.dropout(x * w, 0.0, training=True)  # as BERT's: what reads it saves nothing of it
        return torch.tanh(h + 1.0).sum()

    kept, loss = _clones_left(fn, x, w, grad=True)
    assert kept == 0
    loss.backward()
    got = x.grad.clone()
    x.grad = None
    want = fn(x, w)
    want.backward()
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(got, x.grad)


def test_clone_whose_source_an_output_views_stays(target):
    """Dropping it would make two outputs share memory that eager keeps apart."""
    x = torch.randn(target.rows, target.cols, device=target.device)

    def fn(x):
        y = x * 2.0
        z = torch.tanh(x)
        return y.clone().t(), y.t(), z.clone().t(), z.clone()[1:]

    kept, got = _clones_left(fn, x)
    assert kept == 2  # y's clone, and one of z's two
    assert len({t.untyped_storage().data_ptr() for t in got}) == 4
    for g, w in zip(got, fn(x)):
        torch.testing.assert_close(g, w)
