"""Attention masks simplified in dynamo's graph (``gint.conductor.masks``, issue 30): a
mask built from constants alone becomes no mask or ``is_causal`` where equivalent; any
other mask stays. Results against eager PyTorch on random data."""

import pytest
import torch
import torch.nn.functional as F

from gint.conductor import backend, masks, register_backend

register_backend()


def _qkv(device, length=24, keys=24):
    q = torch.randn(2, 4, length, 16, device=device)
    k = torch.randn(2, 4, keys, 16, device=device)
    v = torch.randn(2, 4, keys, 16, device=device)
    return q, k, v


def _indices(q, k):
    """Query and key positions shaped as transformers 5.17's sdpa_mask builds them."""
    rows = (torch.arange(q.shape[2], device=q.device) + 0)[None, None, :, None]
    cols = (torch.arange(k.shape[2], device=q.device) + 0)[None, None, None, :]
    return rows, cols


def causal(q, k, v):  # Llama's mask
    rows, cols = _indices(q, k)
    mask = (cols <= rows).expand(q.shape[0], -1, q.shape[2], k.shape[2])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask) * 2.0


def causal_rectangle(q, k, v):  # fewer queries than keys: left as a mask
    return causal(q[:, :, :20], k, v)


def everything(q, k, v):  # BERT's mask: every query sees every key
    rows, _ = _indices(q, k)
    mask = (rows >= 0).expand(q.shape[0], -1, q.shape[2], k.shape[2])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask) + 1.0


def zero_bias(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, torch.zeros(q.shape[2], k.shape[2], device=q.device)) - q


def strict(q, k, v):  # constant, but not causal: j < i (and a row that sees no key)
    rows, cols = _indices(q, k)
    mask = (cols < rows) | (rows == 0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def from_input(q, k, v):
    mask = (q.sum(-1, keepdim=True) > -100.0).expand(*q.shape[:3], k.shape[2])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def random_mask(q, k, v):
    mask = (torch.rand(q.shape[2], k.shape[2], device=q.device) > 0.2) | torch.eye(q.shape[2], k.shape[2], device=q.device).bool()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _compiled(fn, seen):
    def spy(gm, example_inputs):
        seen.append(masks.fold_constant_masks(gm))
        calls = [n for n in gm.graph.nodes if n.target is masks.SDPA]
        seen.append([(n.kwargs.get("attn_mask") is None, n.kwargs.get("is_causal")) for n in calls])
        return backend.gint_backend(gm, example_inputs)

    torch._dynamo.reset()
    return torch.compile(fn, backend=spy)


@pytest.mark.parametrize(
    "fn, folds, after",
    [
        (causal, 1, [(True, True)]),
        (everything, 1, [(True, False)]),
        (zero_bias, 1, [(True, None)]),
        (strict, 0, [(False, None)]),
        (causal_rectangle, 0, [(False, None)]),
        (from_input, 0, [(False, None)]),
    ],
)
def test_constant_masks_fold_where_equivalent(target, fn, folds, after):
    q, k, v = _qkv(target.device)
    seen = []
    with torch.no_grad():
        got = _compiled(fn, seen)(q, k, v)
        want = fn(q, k, v)
    assert seen[0] == folds, seen
    assert [(none, bool(causal_flag)) for none, causal_flag in seen[1]] == [(n, bool(c)) for n, c in after], seen
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_a_random_mask_is_never_folded(target):
    q, k, v = _qkv(target.device)
    seen = []
    torch.manual_seed(1)
    with torch.no_grad():
        _compiled(random_mask, seen)(q, k, v)
    assert seen[0] == 0, seen


def test_causal_fold_under_training_gradients(target):
    q, k, v = (a.requires_grad_() for a in _qkv(target.device, length=27, keys=27))
    seen = []
    out = _compiled(causal, seen)(q, k, v)
    assert seen[0] == 1, seen
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    q2, k2, v2 = (a.detach().requires_grad_() for a in (q, k, v))
    want = torch.autograd.grad(causal(q2, k2, v2).sum(), (q2, k2, v2))
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_transformers_masks_fold(target):
    """transformers' own BERT and Llama (tiny): with 5.17's masks under torch.compile the
    calls lose them (BERT) or become causal (Llama); with versions that build no mask
    there is nothing to fold. Either way the logits are eager's."""
    pytest.importorskip("transformers")
    from gint.bench.models import build, tokens

    for name in ("bert", "llama"):
        model = build(name, tiny=True).to(target.device).eval()
        ids = tokens(model, 2, 8, target.device)
        seen = []
        with torch.no_grad():
            got = _compiled(model, seen)(ids).logits
            want = model(ids).logits
        assert all(none for none, _ in seen[1]), (name, seen)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
