"""The registry of operator lowerings, and what every lowering module builds with.

``lowering`` (arithmetic, comparisons, casts), ``lowering_math`` (math functions) and
``reductions`` (row reductions) each register their operators here with ``@lower``;
nothing in this module imports them, so no module imports its importer.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
import torch.fx

from gint.host import expr
from gint.host.expr import Node

Lowering = Callable[..., Node]
LOWERINGS: dict[torch._ops.OpOverload, Lowering] = {}


class Unsupported(Exception):
    """This use of an operator cannot run in gint; the message says why."""


def lower(*ops):
    """Register the decorated function as the lowering of ``ops``."""

    def register(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register


def value(x) -> Node:
    """A tensor's expression, or a Python number as a float32 immediate."""
    if isinstance(x, Node):
        return x
    if isinstance(x, bool | numbers.Real) and not isinstance(x, torch.SymFloat | torch.SymInt):
        return expr.const(float(x))
    raise Unsupported(f"argument {x!r} of type {type(x).__name__} is neither a tensor nor a constant number")


def apply(name: str, *args) -> Node:
    """The instruction ``name`` applied to ``args`` (expressions or Python numbers)."""
    return expr.apply(name, *(value(a) for a in args))


def tensor_meta(node) -> torch.Tensor | None:
    """The FakeTensor an FX node produces, if it produces one tensor."""
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return val if isinstance(val, torch.Tensor) else None
