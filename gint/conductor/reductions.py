"""Reductions: their lowerings, and the shape rules that let them share a subgraph.

A subgraph with reductions is a *row program* (``gint.host.rowcode``): its domain is
the shape of the tensors the reductions read, and every reduction in it reduces the
same dims of that domain (the *row*). Each value in the subgraph then has one of
three shapes, which says how the kernel sees it:

- ``full``: the domain's shape (one value per element);
- ``keep``: the domain with the row dims of size 1 (keepdim=True: one value per row,
  broadcast back along the row as torch broadcasts it);
- ``drop``: the domain without the row dims (keepdim=False). Its torch broadcasting
  would align dims differently, so a ``drop`` value may only meet other ``drop``
  values and constants; outputs of this shape are handed to the kernel as ``keep``.

``RowShape.of(nodes)`` checks these rules for a group of FX nodes (None: no reductions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.fx

from gint.conductor.registry import Unsupported, lower, tensor_meta, value
from gint.conductor.registry import apply as _op
from gint.host import expr
from gint.host.layout import broadcast_strides

aten = torch.ops.aten

REDUCING_OPS = frozenset(
    {
        aten.sum.dim_IntList,
        aten.sum.default,
        aten.mean.dim,
        aten.mean.default,
        aten.amax.default,
        aten.amin.default,
        aten.prod.dim_int,
        aten.prod.default,
        aten.var.correction,
    }
)

# Rows this long with this few of them leave the GPU idle: one warp walks each row.
FEW_ROWS, LONG_ROW = 64, 1 << 16


def _row_mean(a) -> expr.Node:
    return _op("DIV", expr.reduce("sum", value(a)), expr.rowlen())


@lower(aten.sum.dim_IntList, aten.sum.default)
def _sum(a, dim=None, keepdim=False, dtype=None):
    return expr.reduce("sum", value(a))


@lower(aten.mean.dim, aten.mean.default)
def _mean(a, dim=None, keepdim=False, dtype=None):
    return _row_mean(a)


@lower(aten.amax.default)
def _amax(a, dim=(), keepdim=False):
    return expr.reduce("max", value(a))


@lower(aten.amin.default)
def _amin(a, dim=(), keepdim=False):
    return expr.reduce("min", value(a))


@lower(aten.prod.dim_int, aten.prod.default)
def _prod(a, dim=None, keepdim=False, dtype=None):
    return expr.reduce("prod", value(a))


@lower(aten.var.correction)
def _var(a, dim=None, *, correction=None, keepdim=False):
    """Two passes, as torch's: the mean, then the squared deviations from it."""
    correction = 1 if correction is None else correction
    if not isinstance(correction, int | float):
        raise Unsupported(f"correction={correction!r}")
    deviation = _op("SUB", a, _row_mean(a))
    squares = expr.reduce("sum", _op("MUL", deviation, deviation))
    if correction == 0:
        return _op("DIV", squares, expr.rowlen())
    return _op("DIV", squares, _op("MAX", _op("SUB", expr.rowlen(), float(correction)), 0.0))


def var_mean(a, dim=None, *, correction=None, keepdim=False):
    """``aten.var_mean`` as two reductions (a decomposition: torch's goes through prims)."""
    return aten.var.correction(a, dim, correction=correction, keepdim=keepdim), aten.mean.dim(a, dim, keepdim)


def reduced_dims(node: torch.fx.Node) -> tuple[int, ...] | None:
    """The dims ``node`` reduces, normalized (None: not a reduction)."""
    if node.target not in REDUCING_OPS:
        return None
    rank = tensor_meta(node.args[0]).dim()
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None or (isinstance(dims, list | tuple) and len(dims) == 0):
        return tuple(range(rank))
    dims = [dims] if isinstance(dims, int) else dims
    return tuple(sorted({d % max(rank, 1) for d in dims})) if rank else ()


def _size(value) -> int:
    return value if isinstance(value, int) else value.node.hint


@dataclass(frozen=True)
class RowShape:
    """The domain and the reduced dims of a row-program subgraph."""

    domain: tuple
    dims: tuple[int, ...]

    @property
    def keep(self) -> tuple:
        return tuple(1 if d in self.dims else s for d, s in enumerate(self.domain))

    @property
    def drop(self) -> tuple:
        return tuple(s for d, s in enumerate(self.domain) if d not in self.dims)

    def kind(self, shape) -> str | None:
        shape = tuple(shape)
        for name, candidate in (("full", self.domain), ("keep", self.keep), ("drop", self.drop)):
            if shape == candidate:
                return name
        return None

    @staticmethod
    def of(nodes: list[torch.fx.Node], inputs: list[torch.fx.Node]) -> RowShape | str | None:
        """The row shape of a group with reductions; None without; a string saying why
        the group cannot be one row program."""
        reductions = [n for n in nodes if reduced_dims(n) is not None]
        if not reductions:
            return None
        first = reductions[0]
        domain = tuple(tensor_meta(first.args[0]).shape)
        dims = reduced_dims(first)  # () for a 0-d tensor: a row of one element
        for node in reductions[1:]:
            if reduced_dims(node) != dims or tuple(tensor_meta(node.args[0]).shape) != domain:
                return f"{node.name} reduces other dims or another shape than {first.name}"
        shape = RowShape(domain, dims)
        if any(_size(domain[d]) == 0 for d in range(len(domain))):
            return "reduces an empty tensor"
        # sizes as hints: a decision made here must not specialize a dynamic size
        rows = math.prod(_size(size) for size in shape.drop)
        row = math.prod(_size(domain[d]) for d in dims)
        if rows < FEW_ROWS and row >= LONG_ROW:
            return f"{rows} row(s) of {row} elements: too few rows for a warp each"
        return shape.check(nodes, inputs)

    def check(self, nodes: list[torch.fx.Node], inputs: list[torch.fx.Node]) -> RowShape | str:
        kinds: dict[torch.fx.Node, str] = {node: "input" for node in inputs}
        try:
            spanned = tuple(torch.broadcast_shapes(*(tuple(tensor_meta(n).shape) for n in inputs)))
        except RuntimeError:
            return "the inputs' shapes do not broadcast together"
        if spanned != self.domain:
            return f"the inputs span {spanned}, not the reduced shape {self.domain}"
        for node in nodes:
            kind = self.kind(tensor_meta(node).shape)
            if kind is None:
                return f"{node.name} has shape {tuple(tensor_meta(node).shape)}: neither the domain {self.domain} nor a row result"
            args = [kinds[a] for a in node.all_input_nodes]
            if reduced_dims(node) is not None:
                if tensor_meta(node.args[0]).shape != self.domain:
                    return f"{node.name} reduces a tensor of another shape"
            elif ("drop" in args or kind == "drop") and any(k != "drop" for k in args):
                return f"{node.name} mixes a per-row result without its reduced dims with other tensors"
            kinds[node] = kind
        for node in [*inputs, *(n for n in nodes if kinds[n] == "full")]:
            if not self.row_merges(tensor_meta(node)):
                return f"{node.name}'s memory does not walk the reduced dims {self.dims} as one run"
        return self

    def row_merges(self, meta: torch.Tensor) -> bool:
        """Whether ``meta`` (broadcast to the domain) walks the reduced dims as one strided
        run, as the kernel's row must (checked at compile time: a layout error at run time
        would be an error where eager works)."""
        sizes = [_size(s) for s in self.domain]
        shape = [_size(s) for s in meta.shape]
        strides = broadcast_strides(shape, [_size(s) for s in meta.stride()], sizes)
        walked = [d for d in self.dims if sizes[d] != 1]
        return all(strides[a] == strides[b] * sizes[b] for a, b in zip(walked, walked[1:]))
