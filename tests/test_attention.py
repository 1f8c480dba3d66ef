"""Attention in inference graphs stays one operator (``gint::attention``) that picks its
fused kernel on the real tensors of each call, as eager does (issue 30,
``gint.conductor.attention``); graphs that need gradients keep torch's own tracing.
Results against eager PyTorch on random data."""

import types

import pytest
import torch
import torch.nn.functional as F

import gint
from gint.conductor import register_backend

register_backend()


def attend(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask) * 2.0 + 1.0


def attend_causal(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3).sigmoid()


def attend_gqa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k[:, :1], v[:, :1], enable_gqa=True) - q


def _inputs(device, dtype=torch.float32, length=24):
    q = torch.randn(2, 4, length, 16, device=device, dtype=dtype)
    k = torch.randn(2, 4, length + 3, 16, device=device, dtype=dtype)
    v = torch.randn(2, 4, length + 3, 16, device=device, dtype=dtype)
    mask = torch.randn(2, 1, length, length + 3, device=device, dtype=dtype)
    return q, k, v, mask


@pytest.mark.parametrize("fn", [attend, attend_causal, attend_gqa])
def test_attention_runs_whole_and_matches_eager(target, fn):
    args = _inputs(target.device)
    if fn is attend_causal:
        args = tuple(a[..., :24, :] if a.dim() == 4 and i < 3 else a for i, a in enumerate(args))
    torch._dynamo.reset()
    report = gint.explain(fn, *args)
    eager_ops = [f.op for f in report.fallback]
    assert eager_ops == ["gint.attention.default"], str(report)
    assert report.subgraphs, str(report)  # what follows attention still runs in gint
    torch._dynamo.reset()
    with torch.no_grad():
        got = torch.compile(fn, backend="gint")(*args)
    torch.testing.assert_close(got, fn(*args), rtol=1e-5, atol=1e-5)


def test_a_transposed_result_is_contiguous_for_the_graph(target):
    """Whatever memory order the fused kernel returns, the traced graph's views hold."""
    def fn(q, k, v, mask):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1) * 3.0

    args = _inputs(target.device)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(fn, backend="gint")(*args), fn(*args), rtol=1e-5, atol=1e-5)


def test_a_mask_expanded_over_the_keys_reaches_sdpa_contiguous(target, monkeypatch):
    """transformers 5.17 under torch.compile masks BERT with a bool row mask expanded over
    the keys (last stride 0): no fused kernel takes it (on the H100 SDPA then runs its math
    path, 699 us vs cuDNN's 48 us for 8x12x512x64 bf16), so gint::attention copies such a
    mask before the call; the result is eager's."""
    from gint.conductor import attention

    q, k, v, _ = _inputs(target.device)
    mask = (torch.rand(2, 1, 24, 1, device=target.device) > 0.3).expand(2, 1, 24, 27)  # False: a NaN row
    seen = []

    def spy(*args, attn_mask=None, **kwargs):
        seen.append(attn_mask.stride())
        return F.scaled_dot_product_attention(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attention, "F", types.SimpleNamespace(scaled_dot_product_attention=spy))
    torch._dynamo.reset()
    got = torch.compile(attend, backend="gint")(q, k, v, mask)
    monkeypatch.undo()
    torch.testing.assert_close(got, attend(q, k, v, mask), rtol=1e-5, atol=1e-5, equal_nan=True)
    assert seen and all(stride[-1] == 1 for stride in seen), seen


def test_16_bit(target):
    args = _inputs(target.device, torch.bfloat16)
    torch._dynamo.reset()
    got = torch.compile(attend, backend="gint")(*args)
    torch.testing.assert_close(got, attend(*args), rtol=2e-2, atol=2e-2)


def test_training_keeps_torchs_attention_and_its_gradients(target):
    q, k, v, mask = (a.requires_grad_() for a in _inputs(target.device))
    torch._dynamo.reset()
    out = torch.compile(attend, backend="gint")(q, k, v, mask)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    q2, k2, v2 = (a.detach().requires_grad_() for a in (q, k, v))
    want = torch.autograd.grad(attend(q2, k2, v2, mask.detach()).sum(), (q2, k2, v2))
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_training_with_a_mask_expanded_over_the_keys(target):
    """Dynamo's graph gets the mask made contiguous before AOT autograd traces it
    (``contiguous_masks``); the gradients are eager's."""
    from gint.conductor import backend, masks

    q, k, v, _ = (a.requires_grad_() for a in _inputs(target.device))
    bias = torch.randn(2, 1, 24, 1, device=target.device)  # per query: any values stay finite

    def fn(q, k, v, bias):
        return attend(q, k, v, bias.expand(2, 1, 24, 27))

    made = []

    def spy(gm, example_inputs):
        made.append(masks.contiguous_masks(gm))
        return backend.gint_backend(gm, example_inputs)

    torch._dynamo.reset()
    out = torch.compile(fn, backend=spy)(q, k, v, bias)
    assert made == [1], made
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    q2, k2, v2 = (a.detach().requires_grad_() for a in (q, k, v))
    want = torch.autograd.grad(fn(q2, k2, v2, bias).sum(), (q2, k2, v2))
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_tiny_bert_attention_is_one_operator(target):
    pytest.importorskip("transformers")
    from gint.bench.models import build, tokens

    model = build("bert", tiny=True).to(target.device).eval()
    ids = tokens(model, 2, 8, target.device)
    torch._dynamo.reset()
    with torch.no_grad():
        report = gint.explain(model, ids)
        got = torch.compile(model, backend="gint")(ids).logits
        want = model(ids).logits
    ops = [f.op for f in report.fallback] + [op for sub in report.subgraphs for op in sub.ops]
    assert "gint.attention.default" in ops and "aten.bmm.default" not in ops, str(report)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
