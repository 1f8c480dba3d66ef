"""Symbolic scalars (sizes under dynamic shapes) as 0-d tensor inputs.

Under dynamic shapes a graph can use a size as a number: ``x / x.shape[-1]``
becomes ``aten.div.Tensor(x, s1)`` with ``s1`` a SymInt placeholder. Bytecode must
not depend on sizes, so such an argument is not baked into the program as an
immediate; instead a small eager node turns it into a 0-d float32 tensor that the
gint subgraph reads like any broadcast input (stride 0). The program stays the
same for every size; only the tensor's value changes.
"""

from __future__ import annotations

import torch
import torch.fx

from gint.conductor import lowering, promotion

aten = torch.ops.aten
SYMBOLIC_NUMBERS = (torch.SymInt, torch.SymFloat)
MARK = promotion.SYMBOLIC_MARK  # node.meta key of the 0-d tensors made here (a number to eager's kernels)


def _is_symbolic_number(arg) -> bool:
    return isinstance(arg, torch.fx.Node) and isinstance(arg.meta.get("val"), SYMBOLIC_NUMBERS)


def materialize_symbolic_scalars(gm: torch.fx.GraphModule) -> int:
    """Give every lowered operator a 0-d tensor where it took a symbolic number.

    Returns how many arguments were rewritten. Nodes gint cannot lower keep their
    symbolic arguments untouched.
    """
    rewritten = 0
    for node in list(gm.graph.nodes):
        out = lowering.tensor_meta(node)
        if node.op != "call_function" or node.target not in lowering.LOWERINGS or out is None:
            continue
        args = list(node.args)
        for i, arg in enumerate(args):
            if not _is_symbolic_number(arg):
                continue
            with gm.graph.inserting_before(node):
                tensor = gm.graph.call_function(
                    aten.scalar_tensor.default, (arg,), {"dtype": torch.float32, "device": out.device}
                )
            tensor.meta[MARK] = True
            with out.fake_mode:
                tensor.meta["val"] = torch.empty((), dtype=torch.float32, device=out.device)
            args[i] = tensor
            rewritten += 1
        if args != list(node.args):
            node.args = tuple(args)
    if rewritten:
        gm.graph.lint()
    return rewritten
