"""Inference graphs without AOT autograd.

AOT autograd traces each dynamo graph through functionalization and wraps what the
compiler returns in a runtime wrapper that, on every call, deals with what the graph
may do to autograd and to its inputs: gradients, input mutations, outputs that alias
inputs. On a small call that wrapper costs more than gint's own launch.

A graph that needs none of it (no input needs a gradient, nothing in it mutates a
tensor, it switches no autocast or grad mode and holds no higher-order operator) is
traced here with ``make_fx`` and the backend's decompositions alone, on dynamo's own
fake tensors (so symbolic sizes stay dynamo's and guards land in dynamo's shape
environment), and dynamo calls gint's compiled graph directly. Views of inputs are
real torch views, as in eager mode; attention stays one operator that picks its fused
kernel when it runs (``gint.conductor.attention``). Any other graph goes through AOT
autograd.

Dynamo guards on what this decision reads (each input's ``requires_grad`` and the
grad mode), so a later call that needs gradients recompiles through AOT autograd.
"""

from __future__ import annotations

import logging

import torch
import torch.fx
from torch._dispatch.python import enable_python_dispatcher
from torch.fx.experimental.proxy_tensor import make_fx

from gint import stats
from gint.conductor.attention import WholeAttention, has_attention

log = logging.getLogger("gint")

# Functions that switch global state inside a dynamo graph; AOT autograd handles them.
_GLOBAL_STATE = frozenset(
    {
        torch._C._set_grad_enabled,
        torch.amp.autocast_mode._enter_autocast,
        torch.amp.autocast_mode._exit_autocast,
    }
)
_PLAIN_VALUES = (int, float, bool, torch.SymInt, torch.SymFloat, torch.SymBool)


def needs_aot(gm: torch.fx.GraphModule, example_inputs) -> str | None:
    """Why ``gm`` must go through AOT autograd, or None if it can be traced directly."""
    grad = torch.is_grad_enabled()
    for value in example_inputs:
        if isinstance(value, torch.Tensor):
            if type(value) not in (torch.Tensor, torch.nn.Parameter):
                return f"a {type(value).__name__} input"
            if grad and value.requires_grad:
                return "an input requires grad"
        elif value is not None and not isinstance(value, _PLAIN_VALUES):
            return f"a {type(value).__name__} input"
    for node in gm.graph.nodes:
        if node.op == "placeholder" and "example_value" not in node.meta:
            return f"input {node.name} has no example value"
        if node.op == "get_attr":
            return f"a module attribute ({node.target})"
        if node.op == "call_method" and node.target in ("item", "tolist"):
            return f"reads a tensor's value (.{node.target}())"  # data-dependent: AOT autograd traces it
        if node.op in ("call_module", "call_method"):
            continue
        if node.op == "call_function":
            reason = _unsupported(node.target)
            if reason:
                return reason
    return None


def _unsupported(target) -> str | None:
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher-order operator {target.name()}"
    if target in _GLOBAL_STATE:
        return f"{target.__name__} inside the graph"
    if isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable:
        return f"{target} mutates its input"
    return None


def trace_for_inference(gm: torch.fx.GraphModule, example_inputs, decompositions: dict) -> torch.fx.GraphModule | None:
    """``gm`` as a decomposed ATen graph for gint, or None when it needs AOT autograd
    (the reason is logged at debug level)."""
    reason = needs_aot(gm, example_inputs)
    if reason is None:
        fakes = [node.meta["example_value"] for node in gm.graph.nodes if node.op == "placeholder"]
        try:
            # the Python dispatcher runs decompositions that take symbolic sizes (interpolate)
            # each attention call stays whole: eager's kernel choice, on real tensors
            run = WholeAttention(gm).run if has_attention(gm) else gm
            with enable_python_dispatcher():
                traced = make_fx(run, decomposition_table=decompositions, tracing_mode="fake")(*fakes)
        except Exception as error:  # noqa: BLE001 - AOT autograd traces what make_fx alone cannot
            log.debug("gint: graph goes through AOT autograd: make_fx failed: %s", error)
            return None
        reason = next(
            (
                found
                for node in traced.graph.nodes
                if node.op == "call_function" and (found := _unsupported(node.target))
            ),
            None,
        )
        if reason is None:
            stats.bump("graphs_without_aot")
            return traced
    log.debug("gint: graph goes through AOT autograd: %s", reason)
    return None
