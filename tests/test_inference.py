"""Inference graphs traced without AOT autograd (gint.conductor.inference): which graphs
take that path, and that every graph, on either path, matches eager PyTorch."""

import pytest
import torch

import gint
from gint.conductor import register_backend
from gint.conductor.inference import needs_aot

register_backend()


def compiled(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint", **kwargs)


def without_aot(run) -> int:
    """How many graphs ``run()`` compiled without AOT autograd."""
    before = gint.counters()["graphs_without_aot"]
    run()
    return gint.counters()["graphs_without_aot"] - before


def norm_chain(x, w):
    y = torch.softmax(x * w, -1)
    return torch.relu(y - 0.01) * 2 + x.sigmoid()


def test_inference_graph_skips_aot_and_matches_eager(target):
    x = torch.randn(target.rows, target.cols, device=target.device)
    w = torch.randn(target.cols, device=target.device)
    fn = compiled(norm_chain)
    assert without_aot(lambda: torch.testing.assert_close(fn(x, w), norm_chain(x, w))) == 1
    report = gint.explain(norm_chain, x, w)
    assert report.coverage == 1.0 and len(report.subgraphs) == 1  # one row program


def test_option_off_goes_through_aot(target):
    x = torch.randn(target.numel, device=target.device)
    fn = compiled(lambda x: torch.relu(x) * 3 - 1, options={"direct_inference": False})
    assert without_aot(lambda: torch.testing.assert_close(fn(x), torch.relu(x) * 3 - 1)) == 0


def test_inputs_needing_grad_go_through_aot_and_train(target):
    x = torch.randn(target.rows, target.cols, device=target.device, requires_grad=True)
    w = torch.randn(target.cols, device=target.device, requires_grad=True)
    ref = [t.detach().clone().requires_grad_() for t in (x, w)]
    fn = compiled(norm_chain)
    assert without_aot(lambda: fn(x, w).sum().backward()) == 0
    norm_chain(*ref).sum().backward()
    torch.testing.assert_close(x.grad, ref[0].grad)
    torch.testing.assert_close(w.grad, ref[1].grad)
    with torch.no_grad():  # same function, no gradients needed: dynamo recompiles, without AOT
        assert without_aot(lambda: torch.testing.assert_close(fn(x, w), norm_chain(x, w))) == 1


def test_input_mutation_goes_through_aot(target):
    def f(x, y):
        z = x * 2
        x.add_(y)  # z must be computed before the update, the result after it
        return z + x

    x, y = (torch.randn(target.numel, device=target.device) for _ in range(2))
    want_x = x.clone()
    want = f(want_x, y)
    fn = compiled(f)
    assert without_aot(lambda: torch.testing.assert_close(fn(x, y), want)) == 0
    torch.testing.assert_close(x, want_x)


def test_intermediate_mutation_goes_through_aot(target):
    def f(x):
        z = x * 2
        z.mul_(3)
        return z - x

    x = torch.randn(target.numel, device=target.device)
    assert without_aot(lambda: torch.testing.assert_close(compiled(f)(x), f(x))) == 0


def test_views_of_inputs_stay_views(target):
    def f(x):
        return x.view(-1)[:5], x * 2

    x = torch.randn(target.rows, target.cols, device=target.device)
    fn = compiled(f)
    count = without_aot(lambda: fn(x))
    before = x.clone()
    view, doubled = fn(x)
    assert count == 1
    assert view.data_ptr() == x.data_ptr()
    x[0, 0] = 123.0  # a view sees later writes to its base, as in eager mode
    assert view[0].item() == 123.0
    torch.testing.assert_close(doubled, before * 2)


def test_dynamic_shapes_without_aot(target):
    fn = compiled(norm_chain, dynamic=True)
    compiled_graphs = gint.counters()["graphs_compiled"]
    for rows in (2, 3, 5):
        x = torch.randn(rows, target.cols + rows, device=target.device)
        w = torch.randn(target.cols + rows, device=target.device)
        torch.testing.assert_close(fn(x, w), norm_chain(x, w))
    assert gint.counters()["graphs_compiled"] == compiled_graphs + 1  # one graph for every shape


def reasons_seen(fn, *args) -> list:
    """What ``needs_aot`` says of each graph dynamo captures from ``fn`` (run eagerly)."""
    seen = []

    def spy(gm, example_inputs):
        seen.append(needs_aot(gm, example_inputs))
        return gm.forward

    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(fn, backend=spy)(*args), fn(*args))
    return seen


def test_autocast_region_goes_through_aot():
    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch.mm(x, x)
        return y.float() + 1

    seen = reasons_seen(f, torch.randn(8, 8))
    assert seen and all(reason is not None and "autocast" in reason for reason in seen)


def test_grad_mode_switch_goes_through_aot():
    def f(x):
        with torch.no_grad():
            y = x * 2
        return y + 1

    seen = reasons_seen(f, torch.randn(8))
    assert seen and all(reason is not None and "grad" in reason for reason in seen)


def graph_of(inputs) -> torch.fx.GraphModule:
    """``inputs[0] * 2`` with a placeholder per input, as dynamo would hand it over."""
    graph = torch.fx.Graph()
    placeholders = []
    for k, value in enumerate(inputs):
        placeholders.append(graph.placeholder(f"arg{k}"))
        placeholders[-1].meta["example_value"] = value
    graph.output(graph.call_function(torch.mul, (placeholders[0], 2)))
    return torch.fx.GraphModule({}, graph)


@pytest.mark.parametrize(
    "inputs, reason",
    [
        ([torch.randn(4), 3, 2.5, None], None),
        ([torch.randn(4, requires_grad=True)], "requires grad"),
        ([torch.nn.Parameter(torch.randn(4))], "requires grad"),
        ([torch.randn(4), "text"], "str input"),
    ],
)
def test_needs_aot_reasons(inputs, reason):
    found = needs_aot(graph_of(inputs), inputs)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_needs_aot_when_grad_is_off_ignores_requires_grad():
    inputs = [torch.randn(4, requires_grad=True)]
    with torch.no_grad():
        assert needs_aot(graph_of(inputs), inputs) is None


def test_needs_aot_without_example_values():
    gm = torch.fx.symbolic_trace(lambda x: x * 2)
    assert "no example value" in needs_aot(gm, [torch.randn(4)])
