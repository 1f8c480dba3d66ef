"""Attention masks in dynamo's graph, simplified before any trace so that SDPA picks a
fused kernel, as eager does (issue 30).

transformers 5.17 under torch.compile builds a mask where eager passes none
(huggingface/transformers#48925): BERT gets ``arange(q)[..., None] >= 0`` (every key,
every query) and Llama ``arange(kv) <= arange(q)`` (causal), each expanded over the batch.
On the H100 (2026-12-06, (8,12,512,64) bf16) SDPA took 21.4 us with no mask, 47.8 us with
a contiguous bool mask (cuDNN), 699 us with BERT's mask as built (expanded over the keys,
last stride 0: no fused kernel takes it, the math path runs). Two passes, in order:

- ``fold_constant_masks``: a mask computed from constants only (``arange``, comparisons,
  indexing, ``expand`` ... on static sizes; no graph input, no parameter, nothing random)
  is evaluated once at compile time. All true (or, for an additive mask, all zero): the
  call gets no mask. Exactly ``j <= i`` over its last two dims (query i, key j): the call
  gets ``is_causal=True`` instead, which SDPA defines as that same mask. The value cannot
  change between calls: it depends on nothing a call passes in, and dynamo recompiles
  when the sizes change. Any other mask stays.
- ``contiguous_masks``: a mask whose last stride is not 1 is made contiguous before the
  call (a copy of the mask's size).
"""

from __future__ import annotations

import operator

import torch
import torch.fx
from torch.fx.node import map_arg

from gint.conductor.attention import SDPA
MAX_FOLDED = 1 << 26  # elements of a mask evaluated at compile time

_CONSTANT_FUNCTIONS = {
    torch.arange, torch.ones, torch.zeros, torch.full, torch.tril, torch.triu, torch.eye, torch.where,
    torch.logical_and, torch.logical_or, torch.logical_not, torch.logical_xor,
    operator.add, operator.sub, operator.mul, operator.neg, operator.getitem, operator.invert,
    operator.le, operator.lt, operator.ge, operator.gt, operator.eq, operator.ne,
    operator.and_, operator.or_, operator.xor,
}  # fmt: skip
_CONSTANT_METHODS = {
    "expand", "view", "reshape", "unsqueeze", "squeeze", "transpose", "permute", "contiguous", "to",
    "bool", "float", "int", "long", "logical_and", "logical_or", "logical_not", "__and__", "__or__",
    "__invert__", "le", "lt", "ge", "gt", "eq", "ne", "tril", "triu",
}  # fmt: skip


def _argument(node: torch.fx.Node, name: str, position: int, default=None):
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if len(node.args) > position else default


def _set_argument(node: torch.fx.Node, name: str, position: int, value) -> None:
    if len(node.args) > position:
        node.update_arg(position, value)
    else:
        node.update_kwarg(name, value)


def _sdpa_calls(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is SDPA]


def _constant_chain(mask: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The nodes ``mask`` is computed from (graph order), if all are constant; else None."""
    chain, todo = {}, [mask]
    while todo:
        node = todo.pop()
        if node in chain:
            continue
        if node.op == "call_function" and node.target in _CONSTANT_FUNCTIONS:
            pass
        elif node.op == "call_method" and node.target in _CONSTANT_METHODS:
            pass
        else:
            return None
        chain[node] = None
        todo += node.all_input_nodes
    order = {n: i for i, n in enumerate(mask.graph.nodes)}
    return sorted(chain, key=order.__getitem__)


def _evaluate(chain: list[torch.fx.Node]):
    values: dict[torch.fx.Node, object] = {}
    for node in chain:
        args = map_arg(node.args, values.__getitem__)
        kwargs = map_arg(node.kwargs, values.__getitem__)
        if node.op == "call_method":
            values[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        else:
            values[node] = node.target(*args, **kwargs)
    return values[chain[-1]]


def _constant_value(mask: torch.fx.Node) -> tuple[list[torch.fx.Node] | None, torch.Tensor | None]:
    """``mask``'s constant chain and its value, or (None, None) where it is not constant."""
    example = mask.meta.get("example_value")
    if isinstance(example, torch.Tensor) and example.numel() > MAX_FOLDED:
        return None, None
    chain = _constant_chain(mask)
    if chain is None:
        return None, None
    try:
        with torch.no_grad():
            value = _evaluate(chain)
    except Exception:  # noqa: BLE001 - not foldable after all: the mask stays
        return None, None
    return (chain, value) if isinstance(value, torch.Tensor) else (None, None)


def _folded(call: torch.fx.Node, value: torch.Tensor) -> str | None:
    """What a constant mask amounts to: "none", "causal", or None (keep it)."""
    if value.dtype == torch.bool:
        if bool(value.all()):
            return "none"
    elif value.is_floating_point():
        return "none" if not bool(value.any()) else None
    else:
        return None
    if value.dim() < 2 or _argument(call, "is_causal", 5, False) or _argument(call, "dropout_p", 4, 0.0) != 0.0:
        return None
    rows, cols = value.shape[-2:]
    if rows != cols:  # SDPA's causal is top-left aligned, FlashAttention's bottom-right: only square is sure
        return None
    causal = torch.ones(rows, cols, dtype=torch.bool, device=value.device).tril()
    return "causal" if torch.equal(value, causal.expand_as(value)) else None


def _erase_unused(chain: list[torch.fx.Node]) -> None:
    for node in reversed(chain):
        if not node.users:
            node.graph.erase_node(node)


def fold_constant_masks(gm: torch.fx.GraphModule) -> int:
    """Replace each SDPA mask computed from constants alone by no mask or ``is_causal``
    where it is equivalent (module docstring); returns how many calls changed."""
    changed = 0
    evaluated: dict[torch.fx.Node, tuple] = {}  # a mask every layer shares is evaluated once
    for call in _sdpa_calls(gm):
        mask = _argument(call, "attn_mask", 3)
        if not isinstance(mask, torch.fx.Node):
            continue
        if mask not in evaluated:
            evaluated[mask] = _constant_value(mask)
        chain, value = evaluated[mask]
        if value is None:
            continue
        way = _folded(call, value)
        if way is None:
            continue
        _set_argument(call, "attn_mask", 3, None)
        if way == "causal":
            _set_argument(call, "is_causal", 5, True)
        _erase_unused(chain)
        changed += 1
    if changed:
        gm.recompile()
    return changed


def contiguous_masks(gm: torch.fx.GraphModule) -> int:
    """Make every SDPA mask whose last stride is not 1 (on dynamo's example values)
    contiguous before the call; returns how many were."""
    changed = 0
    for call in _sdpa_calls(gm):
        mask = _argument(call, "attn_mask", 3)
        example = mask.meta.get("example_value") if isinstance(mask, torch.fx.Node) else None
        if not isinstance(example, torch.Tensor) or example.dim() == 0 or example.stride(-1) == 1:
            continue
        with gm.graph.inserting_before(call):
            copied = gm.graph.call_method("contiguous", (mask,))
        copied.meta["example_value"] = example.contiguous()
        _set_argument(call, "attn_mask", 3, copied)
        changed += 1
    if changed:
        gm.recompile()
    return changed


def simplify_masks(gm: torch.fx.GraphModule) -> None:
    """Both passes, in order."""
    fold_constant_masks(gm)
    contiguous_masks(gm)
