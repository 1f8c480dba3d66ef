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

Masks are simplified in dynamo's graph before either trace: ``gint.conductor.masks``.
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


def has_attention(gm: torch.fx.GraphModule) -> bool:
    return any(node.op == "call_function" and node.target is SDPA for node in gm.graph.nodes)
