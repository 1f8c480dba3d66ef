"""View operators of a compiled graph run as tensor methods (gint.conductor.viewcalls):
the same views, results and strides as the ATen calls they replace."""

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from gint.conductor import register_backend
from gint.conductor.viewcalls import METHODS, as_methods

register_backend()
aten = torch.ops.aten


def views(x, y):
    a = x.t().unsqueeze(0).expand(3, -1, -1)  # t, unsqueeze, expand
    b = a.permute(2, 0, 1).reshape(x.shape[1] * 3, -1)  # permute, view (of a copy)
    c = y.transpose(0, 1).select(1, 1).squeeze()  # transpose, select, squeeze
    d = y.as_strided((2, 2), (1, 2), 1).detach()  # as_strided, detach
    return a * 1.0, b + 1.0, c * 2.0, d - 1.0, y[1:].unsqueeze(-1)  # slice stays an ATen call


def test_views_become_methods_with_the_same_results():
    x, y = torch.randn(4, 5), torch.randn(3, 1, 4)
    gm = make_fx(views)(x, y)
    before = sum(1 for n in gm.graph.nodes if n.target in METHODS)
    assert as_methods(gm) == before >= 8
    gm.recompile()
    assert not any(n.target in METHODS for n in gm.graph.nodes)
    assert any(n.target is aten.slice.Tensor for n in gm.graph.nodes)
    for got, want in zip(gm(x, y), views(x, y)):
        assert got.shape == want.shape and got.stride() == want.stride()
        torch.testing.assert_close(got, want)


def test_compiled_graph_with_views_and_gradients(target):
    x = torch.randn(target.rows, target.cols, device=target.device, requires_grad=True)
    w = torch.randn(target.cols, device=target.device)

    def fn(x, w):
        h = (x * w).t().unsqueeze(0)
        return torch.tanh(h.permute(0, 2, 1) + 1.0).sum(-1).mean()

    torch._dynamo.reset()
    got = torch.compile(fn, backend="gint")(x, w)
    got.backward()
    grad = x.grad.clone()
    x.grad = None
    want = fn(x, w)
    want.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(grad, x.grad)
