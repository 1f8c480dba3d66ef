"""Copies nobody needs, out of an ATen graph before it is partitioned.

``drop_clones``: in a graph that mutates nothing (an inference graph, and AOT
autograd's functional forward and backward graphs), a ``clone`` is a copy nobody needs
where it keeps its source's layout and aliases nothing the caller sees. Dropout traces
as one where it does nothing (eval mode, or ``p=0`` in training: 13 per forward of
transformers' BERT, each a copy kernel where eager runs none).

``single_part_cats``: a ``cat`` of one tensor and empty ones becomes a copy gint can fuse.
transformers' key/value caches start empty (``torch.tensor([])``) and grow by
``torch.cat([cache, new], dim=-2)``: on a first forward, or in a model called without a
cache, each layer's keys and values are concatenated to nothing. ``cat`` is no gint
operator, so each is an eager kernel that copies a tensor another subgraph has just
written (GPT-2 and Llama: 2 per layer). As a ``clone`` in the result's memory format
the copy is a gint operator: where the tensor comes from a gint subgraph and feeds
nothing else (Llama's keys after the rotary embedding), the subgraph writes the cache
directly and the copy is gone.

The result stays a fresh tensor with the same dtype, shape and strides as the ``cat``'s
(FakeTensor metadata), so nothing the caller sees changes; a ``cat`` whose result
layout a ``clone`` would not reproduce is left alone.

Both passes edit the graph only; the caller recompiles it once (``compile_forward``).
"""

from __future__ import annotations

import torch
import torch.fx

from gint.conductor.registry import tensor_meta

aten = torch.ops.aten


def _is_empty_part(meta: torch.Tensor, dim: int, rank: int) -> bool:
    """``cat`` skips a part with no elements along ``dim``, and the legacy 1-D ``(0,)``."""
    if meta.dim() == 1 and meta.shape[0] == 0 and rank != 1:
        return True
    return meta.dim() == rank and meta.shape[dim] == 0


def _format_of(out: torch.Tensor, source: torch.Tensor):
    """The ``memory_format`` a clone of ``source`` needs to have ``out``'s strides, or None."""
    if out.stride() == source.stride():
        return torch.preserve_format
    for memory_format in (torch.contiguous_format, torch.channels_last, torch.channels_last_3d):
        try:
            if out.is_contiguous(memory_format=memory_format):
                return memory_format
        except RuntimeError:  # channels_last of a tensor of another rank
            continue
    return None


def single_part_cats(gm: torch.fx.GraphModule) -> int:
    """Replace each ``aten.cat`` whose parts are all empty but one by a ``clone`` of that
    one with the ``cat``'s dtype, shape and strides; returns how many went."""
    replaced = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not aten.cat.default:
            continue
        out = tensor_meta(node)
        parts = node.args[0]
        if out is None or not isinstance(parts, list | tuple):
            continue
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        metas = [tensor_meta(part) for part in parts]
        if any(meta is None for meta in metas):
            continue
        if any(isinstance(size, torch.SymInt) for meta in (out, *metas) for size in meta.shape):
            continue  # comparing a symbolic size would add a guard: left as it is
        dim = dim % out.dim() if out.dim() else 0
        kept = [(part, meta) for part, meta in zip(parts, metas) if not _is_empty_part(meta, dim, out.dim())]
        if len(kept) != 1:
            continue
        source, meta = kept[0]
        if meta.dtype != out.dtype or tuple(meta.shape) != tuple(out.shape) or meta.device != out.device:
            continue
        memory_format = _format_of(out, meta)
        if memory_format is None:
            continue
        with gm.graph.inserting_before(node):
            kwargs = {} if memory_format is torch.preserve_format else {"memory_format": memory_format}
            clone = gm.graph.call_function(aten.clone.default, (source,), kwargs)
        clone.meta = dict(node.meta)
        node.replace_all_uses_with(clone)
        gm.graph.erase_node(node)
        replaced += 1
    return replaced  # the empty parts' producers are dead now: the caller's dead-code pass drops them


def mutates_nothing(gm: torch.fx.GraphModule) -> bool:
    """No node of ``gm`` writes to a tensor (AOT autograd's graphs are functional, except
    for the input mutations it copies back at the end)."""
    return not any(
        node.op == "call_function"
        and isinstance(node.target, torch._ops.OpOverload)
        and node.target._schema.is_mutable
        for node in gm.graph.nodes
    )


def _view_base(node):
    """The tensor ``node`` is a view of (itself if it is no view)."""
    while (
        isinstance(node, torch.fx.Node)
        and node.op == "call_function"
        and isinstance(node.target, torch._ops.OpOverload)
        and node.target.is_view
    ):
        node = node.args[0]
    return node


def drop_clones(gm: torch.fx.GraphModule) -> int:
    """Remove each ``aten.clone`` of a graph that mutates nothing whose result has its
    source's dtype, shape and strides, where the clone is no graph output itself and no
    graph output is (or views) its source or the tensor that source views, and that
    tensor is no graph input; returns how many went. Without it nothing changes but
    aliasing among the graph's own intermediates, which nothing mutates and the caller
    never sees (an output that viewed the clone views its source, which no other output
    reaches)."""
    output = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    returned = set(output.all_input_nodes)
    reached = {_view_base(n) for n in returned}  # what the caller's tensors are views of
    dropped = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.clone.default or node in returned:
            continue
        source = node.args[0]
        base = _view_base(source)
        if not isinstance(base, torch.fx.Node) or base.op == "placeholder" or base in reached:
            continue
        mine, theirs = node.meta.get("val"), source.meta.get("val")
        if not isinstance(mine, torch.Tensor) or not isinstance(theirs, torch.Tensor):
            continue
        if (mine.dtype, mine.shape, mine.stride()) != (theirs.dtype, theirs.shape, theirs.stride()):
            continue
        if node in reached:  # an output views this clone: from now on it views the source
            reached.add(base)
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
        dropped += 1
    return dropped
