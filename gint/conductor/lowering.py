"""ATen operators -> gint expressions, as a registry: adding an operator is one entry.

Each lowering takes the operator's arguments (expression ``Node``s for tensors, plain
Python numbers for scalars) and returns the ``Node`` of its result; ``lower_node``
first gives it its operands as eager holds them (``gint.conductor.promotion``). Values
are float32 inside the kernel, so support is decided per FX node by
``unsupported_reason``: every tensor it touches has a dtype the tensor table knows,
its result is floating point or bool, and it does not compute on integers (float32 is
exact for integers only below 2**24, so such nodes run eagerly).
"""

from __future__ import annotations


import torch
import torch.fx

from gint import abi
from gint.conductor import lowering_math, promotion, reductions  # noqa: F401 - they register their operators
from gint.conductor.registry import LOWERINGS, Lowering, Unsupported, lower, tensor_meta, value  # noqa: F401
from gint.conductor.registry import apply as _op
from gint.host import expr
from gint.host.expr import Node

aten = torch.ops.aten

RESULT_DTYPES = frozenset({torch.float32, torch.float16, torch.bfloat16, torch.bool})


def _scaled(b, alpha) -> Node:
    return value(b) if alpha == 1 else _op("MUL", b, alpha)


# ------------------------------------------------------------------ arithmetic


@lower(aten.add.Tensor, aten.add.Scalar)
def _add(a, b, alpha=1):
    return _op("ADD", a, _scaled(b, alpha))


@lower(aten.sub.Tensor, aten.sub.Scalar)
def _sub(a, b, alpha=1):
    return _op("SUB", a, _scaled(b, alpha))


@lower(aten.rsub.Tensor, aten.rsub.Scalar)
def _rsub(a, b, alpha=1):
    return _op("SUB", b, _scaled(a, alpha))


@lower(aten.mul.Tensor, aten.mul.Scalar)
def _mul(a, b):
    return _op("MUL", a, b)


@lower(aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode)
def _div(a, b, rounding_mode=None):
    if rounding_mode is None:
        return _op("DIV", a, b)
    if rounding_mode == "trunc":
        return _op("TRUNC", _op("DIV", a, b))
    if rounding_mode == "floor":
        return _op("FLOORDIV", a, b)
    raise Unsupported(f"rounding_mode={rounding_mode!r}")


_DIVISIONS = frozenset({aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode})


def _div_by_cpu_scalar(a, b, rounding_mode=None):
    """Division by a Python number as eager's CUDA kernels do it: ``a * (1 / b)``, the
    reciprocal taken in float32 (``div_true_kernel_cuda``; ``x / 3`` differs from the
    quotient by an ulp in a third of the values). Floor division keeps the quotient: its
    result is rounded to an integer, which the ulp never moves."""
    if rounding_mode == "floor":
        return _div(a, b, rounding_mode)
    if isinstance(b, Node):
        reciprocal = _op("DIV", 1.0, b)
    else:
        one, divisor = torch.tensor(1.0), torch.tensor(float(b), dtype=torch.float32)
        reciprocal = expr.const((one / divisor).item())
    product = _op("MUL", a, reciprocal)
    return product if rounding_mode is None else _op("TRUNC", product)


@lower(aten.neg.default)
def _neg(a):
    return _op("NEG", a)


@lower(aten.abs.default)
def _abs(a):
    return _op("ABS", a)


@lower(aten.floor.default)
def _floor(a):
    return _op("FLOOR", a)


@lower(aten.ceil.default)
def _ceil(a):
    return _op("CEIL", a)


@lower(aten.trunc.default)
def _trunc(a):
    return _op("TRUNC", a)


@lower(aten.round.default)
def _round(a):
    return _op("ROUND", a)


@lower(aten.maximum.default)
def _maximum(a, b):
    return _op("MAX", a, b)


@lower(aten.minimum.default)
def _minimum(a, b):
    return _op("MIN", a, b)


@lower(aten.relu.default)
def _relu(a):
    return _op("MAX", a, 0.0)


@lower(aten.clamp.default, aten.clamp.Tensor)
def _clamp(a, min=None, max=None):
    result = value(a)
    if min is not None:
        result = _op("MAX", result, min)
    if max is not None:
        result = _op("MIN", result, max)
    return result


@lower(aten.clamp_min.default, aten.clamp_min.Tensor)
def _clamp_min(a, min):
    return _op("MAX", a, min)


@lower(aten.clamp_max.default, aten.clamp_max.Tensor)
def _clamp_max(a, max):
    return _op("MIN", a, max)


# CPU eager's clamp keeps its operand on a tie (relu(-0.0) is -0.0); CUDA's is the IEEE
# maximum (+0.0), which MAX computes. Under the simulator (CPU tensors) gint follows the CPU.
def _keep_unless_below(a, bound):
    return _op("SELECT", _op("LT", a, bound), bound, a)


def _keep_unless_above(a, bound):
    return _op("SELECT", _op("GT", a, bound), bound, a)


def _clamp_cpu(a, min=None, max=None):
    result = value(a)
    if min is not None:
        result = _keep_unless_below(result, min)
    if max is not None:
        result = _keep_unless_above(result, max)
    return result


CPU_LOWERINGS: dict[torch._ops.OpOverload, Lowering] = {
    aten.relu.default: lambda a: _keep_unless_below(a, 0.0),
    aten.clamp.default: _clamp_cpu,
    aten.clamp.Tensor: _clamp_cpu,
    aten.clamp_min.default: _keep_unless_below,
    aten.clamp_min.Tensor: _keep_unless_below,
    aten.clamp_max.default: _keep_unless_above,
    aten.clamp_max.Tensor: _keep_unless_above,
}


@lower(aten.where.self)
def _where(condition, a, b):
    return _op("SELECT", condition, a, b)


def _comparison(name: str):
    def compare(a, b):
        return _op(name, a, b)

    return compare


for _name, _ops in {
    "EQ": (aten.eq.Tensor, aten.eq.Scalar),
    "NE": (aten.ne.Tensor, aten.ne.Scalar),
    "LT": (aten.lt.Tensor, aten.lt.Scalar),
    "LE": (aten.le.Tensor, aten.le.Scalar),
    "GT": (aten.gt.Tensor, aten.gt.Scalar),
    "GE": (aten.ge.Tensor, aten.ge.Scalar),
}.items():
    lower(*_ops)(_comparison(_name))


# ------------------------------------------------------------- FX node support


def unsupported_reason(node: torch.fx.Node, device: torch.device | None) -> str | None:
    """Why ``node`` cannot run in gint on ``device`` (None: it can)."""
    if node.op != "call_function":
        return f"{node.op} node"
    if node.meta.get("gint_symbolic_scalar"):
        return "turns a symbolic size into the 0-d tensor that a gint subgraph reads"
    if node.target not in LOWERINGS:
        return "no gint lowering for this operator"
    out = tensor_meta(node)
    if out is None:
        return "does not produce a single tensor"
    if out.dtype not in RESULT_DTYPES:
        return f"result dtype {out.dtype} (gint computes in float32; integer or float64 results stay eager)"
    for arg in [*node.args, *node.kwargs.values()]:
        if isinstance(arg, torch.fx.Node):
            meta = tensor_meta(arg)
            if meta is None:
                return f"argument {arg.name} is not a tensor"
            if meta.dtype not in abi.DTYPE_CODE:
                return f"argument {arg.name} has dtype {meta.dtype}"
            if meta.device != out.device:
                return f"argument {arg.name} is on {meta.device}, the result on {out.device}"
        elif isinstance(arg, (list, tuple)) and any(isinstance(a, torch.fx.Node) for a in arg):
            return "takes a list of tensors"
        elif isinstance(arg, torch.SymInt | torch.SymFloat | torch.SymBool):
            return "takes a symbolic scalar"
    reason = promotion.integer_reason(node.target, node.args, node.kwargs, tensor_meta)
    if reason is not None:
        return reason
    if device is None or out.device.type != device.type:
        where = "nowhere here (no GPU, simulator off)" if device is None else f"on {device.type}"
        return f"runs on {out.device}; gint runs {where}"
    if any(d == 0 for d in out.shape if isinstance(d, int)):
        return "empty result"
    return None


# Operators that make a tensor of a constant (their lowering takes the result's dtype).
CREATES = frozenset({aten.full.default, aten.full_like.default, aten.scalar_tensor.default})


def lower_node(node: torch.fx.Node, env: dict[torch.fx.Node, Node]) -> Node:
    """The expression of ``node`` given the expressions of its tensor arguments."""

    def resolve(arg):
        return env[arg] if isinstance(arg, torch.fx.Node) else arg

    args = [resolve(a) for a in node.args]
    kwargs = {k: resolve(v) for k, v in node.kwargs.items()}
    out = tensor_meta(node)
    device = out.device.type if out is not None else "cuda"
    args, kwargs = promotion.promote(
        node.target, node.args, node.kwargs, args, kwargs, out.dtype if out is not None else None, tensor_meta, device
    )
    if node.target in CREATES and out is not None:
        kwargs["dtype"] = out.dtype  # the value the new tensor holds is of its own dtype
    lowering = CPU_LOWERINGS.get(node.target) if device == "cpu" else None
    if device == "cuda" and node.target in _DIVISIONS and len(node.args) > 1:
        if promotion.is_number(node.args[1], tensor_meta(node.args[1])):
            lowering = _div_by_cpu_scalar
    return (lowering or LOWERINGS[node.target])(*args, **kwargs)

