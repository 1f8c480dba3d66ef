"""View operators of a compiled graph called as tensor methods: the same dispatch, less host time.

Views cost the GPU nothing, but each is a call on the host, and in AOT autograd's
graphs they are most of the nodes (transformers' BERT, 4 layers: 112 of the forward's
261 nodes, 215 of the backward's 392), where eager's backward makes them in C++. The
generated code calls ``torch.ops.aten.permute.default(x, dims)``, an ``OpOverload``
whose Python ``__call__`` costs about 2.3 us on the CPU machine; ``x.permute(dims)``
reaches the same ATen operator through the same dispatcher in about 1.1 us. So after
partitioning, each view node whose operator has a tensor method with the same
arguments becomes that method's call; the others (``slice``, ``alias``,
``_unsafe_view``: no method, or not the same result) stay as they are.
"""

from __future__ import annotations

import torch
import torch.fx

aten = torch.ops.aten

# operator -> the tensor method taking the same positional arguments after ``self``
METHODS = {
    aten.view.default: "view",
    aten.permute.default: "permute",
    aten.t.default: "t",
    aten.transpose.int: "transpose",
    aten.unsqueeze.default: "unsqueeze",
    aten.squeeze.dim: "squeeze",
    aten.squeeze.dims: "squeeze",
    aten.squeeze.default: "squeeze",
    aten.select.int: "select",
    aten.detach.default: "detach",
    aten.as_strided.default: "as_strided",
    aten.expand.default: "expand",
}


def as_methods(gm: torch.fx.GraphModule) -> int:
    """Rewrite ``gm``'s view calls as tensor-method calls (the caller recompiles);
    returns how many changed."""
    changed = 0
    for node in list(gm.graph.nodes):
        method = METHODS.get(node.target) if node.op == "call_function" else None
        if method is None or node.kwargs.get("implicit", False):
            continue
        kwargs = {k: v for k, v in node.kwargs.items() if k != "implicit"}
        if kwargs:  # every argument positional, as the methods take them
            continue
        with gm.graph.inserting_before(node):
            call = gm.graph.call_method(method, node.args)
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        changed += 1
    return changed
