"""Symbolic scalars (sizes under dynamic shapes) as 0-d tensor inputs.

Under dynamic shapes a graph can use a size as a number: ``x / x.shape[-1]``
becomes ``aten.div.Tensor(x, s1)`` with ``s1`` a SymInt placeholder. Bytecode must
not depend on sizes, so such an argument is not baked into the program as an
immediate; instead a small eager node turns it into a 0-d float32 tensor that the
gint subgraph reads like any broadcast input (stride 0). The program stays the
same for every size; only the tensor's value changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx

from gint.conductor import lowering, promotion

aten = torch.ops.aten
SYMBOLIC_NUMBERS = (torch.SymInt, torch.SymFloat)
MARK = promotion.SYMBOLIC_MARK  # node.meta key of the 0-d tensors made here (a number to eager's kernels)


def _is_symbolic_number(arg) -> bool:
    return isinstance(arg, torch.fx.Node) and isinstance(arg.meta.get("val"), SYMBOLIC_NUMBERS)


@dataclass
class SymbolicRewrites:
    """The arguments ``materialize_symbolic_scalars`` replaced, so that they can be put
    back: the rewrite is made before partitioning, and only a node that lands in a gint
    subgraph may keep its 0-d tensor (an eager ``scalar_tensor(s)`` or ``mul(int, s)``
    needs the number itself: a Tensor there is an error, or a float32 result)."""

    graph: torch.fx.Graph
    made: list[tuple[torch.fx.Node, int, torch.fx.Node]] = field(default_factory=list)  # (user, arg index, 0-d tensor)

    def __len__(self) -> int:
        return len(self.made)

    def undo(self, keep=frozenset()) -> int:
        """Give every rewritten node not in ``keep`` its symbolic number back, and drop
        the 0-d tensors nothing reads any more. Returns how many arguments went back."""
        restored, still, tensors = 0, [], {}
        for user, index, tensor in self.made:
            tensors[tensor] = None
            if user in keep:
                still.append((user, index, tensor))
                continue
            args = list(user.args)
            args[index] = tensor.args[0]
            user.args = tuple(args)
            restored += 1
        self.made = still
        for tensor in tensors:
            if not tensor.users and tensor not in keep:
                self.graph.erase_node(tensor)
        return restored


def materialize_symbolic_scalars(gm: torch.fx.GraphModule) -> SymbolicRewrites:
    """Give every lowered operator a 0-d tensor where it took a symbolic number.

    Returns the rewrites made; ``undo`` them for the nodes that end up outside gint's
    subgraphs. Nodes gint cannot lower keep their symbolic arguments untouched.
    """
    rewrites = SymbolicRewrites(gm.graph)
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
            rewrites.made.append((node, i, tensor))
        if args != list(node.args):
            node.args = tuple(args)
    if rewrites:
        gm.graph.lint()
    return rewrites
