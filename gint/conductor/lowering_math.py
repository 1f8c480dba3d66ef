"""Lowerings of math, activations, logical operators and casts (registered into
``gint.conductor.lowering.LOWERINGS``).

Each follows the formula PyTorch's own kernels use, so values match eager torch:
library functions run on the MATH instruction (``isa.FUNCTIONS``; those in
``isa.DIRECT_FUNCTIONS`` on an instruction of their own), the rest are
compositions of arithmetic, comparisons and SELECT. Operators that
``torch._decomp`` already decomposes (silu, mish, softplus, selu, hardsigmoid,
hardswish, lerp, addcmul, addcdiv, nan_to_num, isfinite, ...) need no entry: they
reach gint as the operators below.
"""

from __future__ import annotations

import math

import torch

from gint import isa
from gint.conductor.registry import Unsupported, lower, value
from gint.conductor.registry import apply as _op
from gint.host import expr

aten, prims = torch.ops.aten, torch.ops.prims


def _math(name: str, *args):
    return expr.math(name, *(value(a) for a in args))


def _function(name: str):
    """The lowering of an operator that is exactly the math function ``name``."""

    def lowering(*args):
        return _math(name, *args)

    lowering.__name__ = f"_{name}"
    return lowering


for _name in (
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
    "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "sigmoid",
):  # fmt: skip
    lower(getattr(aten, _name).default)(_function(_name))


@lower(aten.reciprocal.default)
def _reciprocal(a):
    return _op("DIV", 1.0, a)


@lower(aten.sign.default)
def _sign(a):
    # (0 < a) - (a < 0), as torch: sign(nan) is 0
    return _op("SUB", _op("LT", 0.0, a), _op("LT", a, 0.0))


@lower(aten.silu.default)
def _silu(a):
    # x / (1 + exp(-x)), as eager's CPU and CUDA kernels compute it (not x * sigmoid(x))
    return _op("DIV", a, _op("ADD", 1.0, _math("exp", _op("NEG", a))))


@lower(aten.gelu.default)
def _gelu(a, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"gelu approximate={approximate!r}")
    return _math("gelu" if approximate == "none" else "gelu_tanh", a)


@lower(aten.elu.default)
def _elu(a, alpha=1.0, scale=1.0, input_scale=1.0):
    negative = _op("MUL", _math("expm1", _op("MUL", a, input_scale)), alpha * scale)
    return _op("SELECT", _op("LE", a, 0.0), negative, _op("MUL", a, scale))


@lower(aten.leaky_relu.default)
def _leaky_relu(a, negative_slope=0.01):
    return _op("SELECT", _op("GT", a, 0.0), a, _op("MUL", a, negative_slope))


@lower(aten.hardtanh.default)
def _hardtanh(a, min_val=-1.0, max_val=1.0):
    return _op("MIN", _op("MAX", a, min_val), max_val)


# exponents torch's pow kernels compute without powf (and so must we, to match)
_POW_SPECIAL = {
    2.0: lambda a: _op("MUL", a, a),
    3.0: lambda a: _op("MUL", _op("MUL", a, a), a),
    0.5: lambda a: _math("sqrt", a),
    -0.5: lambda a: _math("rsqrt", a),
    -1.0: lambda a: _op("DIV", 1.0, a),
    -2.0: lambda a: _op("DIV", 1.0, _op("MUL", a, a)),
    1.0: lambda a: value(a),
}


@lower(aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar, aten.pow.Scalar)
def _pow(a, b):
    if isinstance(b, (int, float)) and not isinstance(b, bool) and float(b) in _POW_SPECIAL:
        return _POW_SPECIAL[float(b)](a)
    if isinstance(b, (int, float)) and float(b) == 0.0:
        return value(1.0)
    return _math("pow", a, b)


for _name, _ops in {
    "atan2": (aten.atan2.default,),
    "fmod": (aten.fmod.Tensor, aten.fmod.Scalar),
    "remainder": (aten.remainder.Tensor, aten.remainder.Scalar),
}.items():
    lower(*_ops)(_function(_name))


# ------------------------------------------------------------ tests and logic


@lower(aten.isnan.default)
def _isnan(a):
    return _op("NE", a, a)


@lower(aten.isinf.default)
def _isinf(a):
    return _op("EQ", _op("ABS", a), math.inf)


def _truth(a):
    return _op("NE", a, 0.0)


@lower(aten.logical_not.default)
def _logical_not(a):
    return _op("EQ", a, 0.0)


@lower(aten.logical_and.default)
def _logical_and(a, b):
    return _op("MUL", _truth(a), _truth(b))


@lower(aten.logical_or.default)
def _logical_or(a, b):
    return _op("MAX", _truth(a), _truth(b))


@lower(aten.logical_xor.default)
def _logical_xor(a, b):
    return _op("NE", _truth(a), _truth(b))


# bitwise operators reach gint only with bool results (integer results stay eager)
lower(aten.bitwise_and.Tensor)(_logical_and)
lower(aten.bitwise_or.Tensor)(_logical_or)
lower(aten.bitwise_xor.Tensor)(_logical_xor)
lower(aten.bitwise_not.default)(_logical_not)


# ------------------------------------------------------------------- casts

_ROUNDING = {torch.float16: "to_f16", torch.bfloat16: "to_bf16"}


def without_final_rounding(node: expr.Node, dtype: torch.dtype) -> expr.Node:
    """``node`` minus a last rounding to ``dtype``: a store to a ``dtype`` tensor rounds
    the same way, so a cast right before it costs a dispatch for nothing."""
    if dtype in _ROUNDING and expr.function_of(node) == _ROUNDING[dtype]:
        return node.args[0]
    return node


def _cast(a, dtype):
    if dtype == torch.float32:
        return value(a)
    if dtype in _ROUNDING:
        return _math(_ROUNDING[dtype], a)
    if dtype == torch.bool:
        return _truth(a)
    raise Unsupported(f"cast to {dtype}")


@lower(aten.clone.default)
def _clone(a, memory_format=None):
    return value(a)  # the output's memory order comes from its metadata (OutputSpec)


@lower(prims.convert_element_type.default)
def _convert_element_type(a, dtype):
    return _cast(a, dtype)


@lower(aten._to_copy.default)
def _to_copy(a, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False, memory_format=None):
    if dtype is None:
        return value(a)
    return _cast(a, dtype)


# ------------------------------------------------------------- backward ops


@lower(aten.sigmoid_backward.default)
def _sigmoid_backward(grad, out):
    return _op("MUL", _op("MUL", grad, _op("SUB", 1.0, out)), out)


@lower(aten.tanh_backward.default)
def _tanh_backward(grad, out):
    return _op("MUL", grad, _op("SUB", 1.0, _op("MUL", out, out)))


# ---------------------------------------------------------------- constants


def _constant(fill_value, dtype):
    if not isinstance(fill_value, bool | int | float):
        raise Unsupported(f"fill value {fill_value!r}")
    dtype = dtype or torch.get_default_dtype()
    if dtype == torch.bool:
        return value(float(bool(fill_value)))
    if dtype in _ROUNDING:  # the value the tensor would hold
        return value(torch.tensor(float(fill_value), dtype=dtype, device="cpu").item())
    return value(float(fill_value))


@lower(aten.scalar_tensor.default)
def _scalar_tensor(fill_value, dtype=None, layout=None, device=None, pin_memory=None):
    return _constant(fill_value, dtype)


@lower(aten.full.default)
def _full(size, fill_value, dtype=None, layout=None, device=None, pin_memory=None):
    return _constant(fill_value, dtype)  # broadcasts like any constant; the shape check is the partitioner's


@lower(aten.full_like.default)
def _full_like(a, fill_value, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return _constant(fill_value, dtype)  # lower_node passes the result's dtype
