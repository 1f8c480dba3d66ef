"""Attention in inference graphs runs as eager runs it: one fused SDPA kernel, chosen
on the real tensors of each call.

``F.scaled_dot_product_attention`` is a composite operator: when traced, it asks
``_fused_sdp_choice`` which kernel to use and records that one. On fake tensors that
choice can differ from eager's: on the H100 (2026-12-06, torch 2.11) transformers'
BERT with its attention mask traced to the math path (two batched matmuls around a
softmax of the whole (8,12,512,512) score tensor, ~450 us a layer) where eager, given
the same mask, runs cuDNN attention (``tools/sdpa_probe.py``). So the direct inference
trace (``gint.conductor.inference``) keeps each attention call whole, as the custom
operator ``gint::attention``, which calls ``F.scaled_dot_product_attention`` when the
graph runs: the kernel is chosen on real tensors, as in eager mode. Its result is made
contiguous (a copy where the fused kernel returns another memory order) so that the
traced graph, which saw a contiguous result, holds for every kernel.

Graphs that need gradients go through AOT autograd and keep torch's own tracing of
attention (``gint::attention`` has no backward).

In every dynamo graph, a mask whose last dimension is not contiguous is made contiguous
before its SDPA call (``contiguous_masks``): transformers 5.17 under torch.compile hands
BERT a bool mask expanded over the keys (stride 0), which no fused kernel takes, so each
call fell back to the math path (float32 matmuls, mask arithmetic and a softmax: ~450 us
of kernels a layer on the H100 where eager's cuDNN attention takes 19 us; the same call
699 us with that mask, 47.8 us with it made contiguous). The copy is the mask's size.
"""

import torch
import torch.fx
import torch.nn.functional as F

SDPA = torch._C._nn.scaled_dot_product_attention


@torch.library.custom_op("gint::attention", mutates_args=())
def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
        enable_gqa=enable_gqa,
    )
    return out.contiguous()


@attention.register_fake
def _attention_fake(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return query.new_empty((*query.shape[:-1], value.shape[-1]))


class WholeAttention(torch.fx.Interpreter):
    """Runs a dynamo graph with each SDPA call as ``gint::attention`` (to be traced)."""

    def call_function(self, target, args, kwargs):
        if target is SDPA:
            return torch.ops.gint.attention(*args, **kwargs)
        return super().call_function(target, args, kwargs)


def _mask_argument(node: torch.fx.Node) -> tuple[str | int, object]:
    if "attn_mask" in node.kwargs:
        return "attn_mask", node.kwargs["attn_mask"]
    return 3, node.args[3] if len(node.args) > 3 else None


def contiguous_masks(gm: torch.fx.GraphModule) -> int:
    """Make every SDPA mask whose last stride is not 1 (on dynamo's example values)
    contiguous before the call; returns how many were. Fused kernels need the mask's
    last dimension contiguous; without it SDPA runs its math path."""
    changed = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not SDPA:
            continue
        where, mask = _mask_argument(node)
        example = mask.meta.get("example_value") if isinstance(mask, torch.fx.Node) else None
        if not isinstance(example, torch.Tensor) or example.dim() == 0 or example.stride(-1) == 1:
            continue
        with gm.graph.inserting_before(node):
            copied = gm.graph.call_method("contiguous", (mask,))
        copied.meta["example_value"] = example.contiguous()
        if where == "attn_mask":
            node.update_kwarg("attn_mask", copied)
        else:
            node.update_arg(3, copied)
        changed += 1
    if changed:
        gm.recompile()
    return changed


def has_attention(gm: torch.fx.GraphModule) -> bool:
    return any(node.op == "call_function" and node.target is SDPA for node in gm.graph.nodes)
