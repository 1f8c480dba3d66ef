"""Operands as eager PyTorch holds them: type promotion and 16-bit rounding.

Values are float32 inside the kernel. Eager PyTorch converts each operand of an
elementwise operator to the operator's *common dtype* before computing; where that
dtype is float32, the kernel's float32 loads already hold the same values. Where it
is float16 or bfloat16, eager rounds to it what is not of that dtype yet, and gint
must round there too (``promote``):

- a tensor of another dtype (an integer tensor, a 0-d float32 tensor): ``int32 2049 +
  float16 1`` is 2048 + 1 in eager;
- a Python number: ``bf16 == 0.1`` compares with bf16(0.1). Except where eager's
  kernels compute with the number's own value (``original_scalar_value``), which
  differs by device (measured on an H200 and on the CPU, torch 2.11 and 2.13): on CUDA
  a Python number in add, sub, mul and div (any rounding mode); on the CPU the second
  operand of mul and div, a Python number or a 0-d tensor (``SCALAR_KEPT``);
- a 16-bit value computed inside the subgraph is held unrounded in float32, as
  Inductor holds it, unless a reader needs it exactly as eager holds it: a
  discontinuous reader (a comparison, floor, a truth test, ...: rounding can change
  its answer, not only a last bit) or one computing in another dtype (``(x16 *
  3).float()`` is the float32 of the rounded product). Then it is rounded where it is
  computed, and so is every 16-bit value it is computed from (``needs_exact``), so the
  reader sees eager's value bit for bit.

Integer values are exact in float32 only below 2**24, so an operator whose common
dtype is an integer type runs eagerly unless float32 gives the exact answer for
every integer (truth tests, conversions to a float dtype, which eager rounds the
same way): ``integer_reason``.
"""

from __future__ import annotations

import torch
import torch.fx
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND, elementwise_dtypes

from gint import isa
from gint.host import expr

aten, prims = torch.ops.aten, torch.ops.prims

SIXTEEN_BIT = {torch.float16: "to_f16", torch.bfloat16: "to_bf16"}

_COMPARISONS = [aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge]
COMPARISONS = frozenset(getattr(op, overload) for op in _COMPARISONS for overload in ("Tensor", "Scalar"))
_BINARY = [
    aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar, aten.rsub.Tensor, aten.rsub.Scalar,
    aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode,
    aten.maximum.default, aten.minimum.default, aten.atan2.default, aten.fmod.Tensor, aten.fmod.Scalar,
    aten.remainder.Tensor, aten.remainder.Scalar, aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar, aten.pow.Scalar,
    aten.sigmoid_backward.default, aten.tanh_backward.default, aten.clamp_min.default, aten.clamp_min.Tensor,
    aten.clamp_max.default, aten.clamp_max.Tensor,
    aten.logical_and.default, aten.logical_or.default, aten.logical_xor.default,
    aten.bitwise_and.Tensor, aten.bitwise_or.Tensor, aten.bitwise_xor.Tensor,
]  # fmt: skip
# The arguments that take part in type promotion (positions, or keyword names), by operator;
# every other lowered operator promotes its first argument alone.
OPERANDS: dict = {op: (0, 1) for op in [*COMPARISONS, *_BINARY]}
OPERANDS[aten.where.self] = (1, 2)
OPERANDS[aten.clamp.default] = OPERANDS[aten.clamp.Tensor] = (0, 1, 2, "min", "max")
# Operands eager's kernels do not round to a 16-bit common dtype, by device: "number" is a
# Python number (anywhere), "second scalar" the second operand, a number or a 0-d tensor.
_MUL_DIV = {aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar}
_ADD_SUB = {aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar, aten.rsub.Tensor, aten.rsub.Scalar}
_DIV_MODES = {aten.div.Tensor_mode, aten.div.Scalar_mode}  # kept as div's divisor is
SCALAR_KEPT = {
    "cuda": ("number", frozenset(_MUL_DIV | _ADD_SUB | _DIV_MODES)),
    "cpu": ("second scalar", frozenset(_MUL_DIV | _DIV_MODES)),
}
SYMBOLIC_MARK = "gint_symbolic_scalar"  # node.meta key of a 0-d tensor standing for a Python number
# Readers whose answer can jump when an operand moves by its last bit.
DISCONTINUOUS = COMPARISONS | {
    aten.floor.default, aten.ceil.default, aten.trunc.default, aten.round.default, aten.sign.default,
    aten.div.Tensor_mode, aten.div.Scalar_mode, aten.fmod.Tensor, aten.fmod.Scalar, aten.remainder.Tensor,
    aten.remainder.Scalar, aten.isinf.default, aten.isnan.default, aten.logical_not.default,
    aten.logical_and.default, aten.logical_or.default, aten.logical_xor.default, aten.bitwise_not.default,
    aten.bitwise_and.Tensor, aten.bitwise_or.Tensor, aten.bitwise_xor.Tensor,
}  # fmt: skip
CASTS = frozenset({aten._to_copy.default, prims.convert_element_type.default})
# Exact in float32 for every integer: a truth test, or a conversion eager rounds the same way.
INTEGER_EXACT = CASTS | {
    aten.logical_not.default, aten.logical_and.default, aten.logical_or.default, aten.logical_xor.default,
    aten.isnan.default, aten.isinf.default,
}  # fmt: skip


def operand_keys(target, args, kwargs) -> list:
    """The positions (ints) and keywords (strs) of the arguments ``target`` promotes."""
    keys = OPERANDS.get(target, (0,))
    return [k for k in keys if (isinstance(k, int) and k < len(args)) or (isinstance(k, str) and k in kwargs)]


def _get(args, kwargs, key):
    return args[key] if isinstance(key, int) else kwargs[key]


def common_dtype(operands: list) -> torch.dtype | None:
    """Eager's common dtype of ``operands`` (tensor metadata and Python numbers; None
    values, as clamp's absent bounds, are skipped)."""
    values = [v for v in operands if v is not None and not isinstance(v, str)]
    if not values:
        return None
    _, result = elementwise_dtypes(*values, type_promotion_kind=ELEMENTWISE_TYPE_PROMOTION_KIND.DEFAULT)
    return result


def integer_reason(target, fx_args, fx_kwargs, meta) -> str | None:
    """Why ``target`` must run eagerly because it computes on integers (None: it need not).
    ``meta(arg)`` gives an FX argument's tensor metadata (None for other arguments)."""
    if target in INTEGER_EXACT:
        return None
    values = [_meta_or_value(_get(fx_args, fx_kwargs, k), meta) for k in operand_keys(target, fx_args, fx_kwargs)]
    try:
        dtype = common_dtype(values)
    except (TypeError, ValueError, RuntimeError):
        return None
    if dtype is None or dtype.is_floating_point or dtype == torch.bool or all(map(_small_integer, values)):
        return None
    return f"computes in {dtype} (gint computes in float32, exact for integers only below 2**24)"


def _small_integer(value) -> bool:
    """Exact in float32 whatever it holds: a bool tensor, or a number below 2**24."""
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    return value is None or (isinstance(value, bool | int | float) and abs(value) < 1 << 24)


def rounded(value: expr.Node, dtype: torch.dtype) -> expr.Node:
    """``value`` rounded to the 16-bit ``dtype`` (a constant is rounded here, at compile time)."""
    if value.op == "CONST":
        number = isa.bits_f32(value.operand)
        return expr.const(torch.tensor(number, dtype=torch.float32).to(dtype).item())
    if expr.function_of(value) == SIXTEEN_BIT[dtype]:
        return value  # rounded already
    return expr.math(SIXTEEN_BIT[dtype], value)


def exact_in(value: expr.Node, dtype: torch.dtype, source: torch.dtype) -> bool:
    """Whether ``value`` (an operand whose FX dtype is ``source``) already holds a value of
    ``dtype``: a load of a tensor of that dtype, a constant of it, or a rounding to it."""
    if value.op == "LOAD":
        return source == dtype
    if value.op == "CONST":
        number = isa.bits_f32(value.operand)
        return torch.tensor(number).to(dtype).float().item() == number or number != number
    return expr.function_of(value) == SIXTEEN_BIT.get(dtype)


def promote(
    target, fx_args, fx_kwargs, args: list, kwargs: dict, out_dtype, meta, device: str = "cuda"
) -> tuple[list, dict]:
    """``args``/``kwargs`` (expression nodes for tensors, numbers as given) with each operand
    as eager holds it when ``target`` computes on ``device`` ("cuda" or "cpu"; see the
    module docstring). ``fx_args`` and ``fx_kwargs`` are the FX node's own, ``meta`` as in
    ``integer_reason``."""
    keys = operand_keys(target, fx_args, fx_kwargs)
    dtype = out_dtype  # what the operator computes in: its result's dtype, if floating
    if dtype is None or not dtype.is_floating_point:
        try:
            dtype = common_dtype([_meta_or_value(_get(fx_args, fx_kwargs, k), meta) for k in keys])
        except (TypeError, ValueError, RuntimeError):
            return args, kwargs
    args, kwargs = list(args), dict(kwargs)
    discontinuous = target in DISCONTINUOUS or (target in CASTS and dtype == torch.bool)
    for key in ([0] if target is aten.where.self else []) + keys:
        fx_value, value = _get(fx_args, fx_kwargs, key), _get(args, kwargs, key)
        condition = target is aten.where.self and key == 0  # where reads its condition's truth
        value = _as_read(value, meta(fx_value), None if condition else dtype, discontinuous or condition)
        if not condition and dtype in SIXTEEN_BIT and target not in CASTS:
            if not _kept(target, key, fx_value, meta(fx_value), device):
                value = _promoted(value, meta(fx_value), dtype)
        if isinstance(key, int):
            args[key] = value
        else:
            kwargs[key] = value
    return args, kwargs


def _meta_or_value(fx_value, meta):
    found = meta(fx_value)
    return fx_value if found is None else found


def is_number(fx_value, meta) -> bool:
    """Whether an FX argument is a Python number to eager (a constant, or the 0-d tensor
    standing for a symbolic one): a CPU scalar to eager's CUDA kernels."""
    return meta is None or bool(isinstance(fx_value, torch.fx.Node) and fx_value.meta.get(SYMBOLIC_MARK))


def _kept(target, key, fx_value, meta, device: str) -> bool:
    """Whether eager computes with this operand's own value (``SCALAR_KEPT``)."""
    kind, ops = SCALAR_KEPT.get(device, SCALAR_KEPT["cuda"])
    if target not in ops:
        return False
    number = is_number(fx_value, meta)
    if kind == "number":
        return bool(number)
    return key == 1 and (bool(number) or meta.dim() == 0)


def _promoted(value, meta, dtype: torch.dtype):
    """An operand of an operator computing in the 16-bit ``dtype``, converted to it."""
    if not isinstance(value, expr.Node):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        return torch.tensor(value, dtype=dtype).item()
    if meta.dtype == torch.bool or exact_in(value, dtype, meta.dtype):
        return value
    if meta.dtype == dtype:
        return value  # a value of this dtype computed here: float32 inside, as Inductor holds it
    return rounded(value, dtype)


def _as_read(value, meta, dtype, discontinuous: bool):
    """A 16-bit intermediate rounded to its own dtype where the reader needs the value as
    eager holds it (a discontinuous reader, or one computing in another ``dtype``)."""
    if not isinstance(value, expr.Node) or meta is None:
        return value
    source = meta.dtype
    if source in SIXTEEN_BIT and (discontinuous or dtype != source) and not exact_in(value, source, source):
        return rounded(value, source)
    return value


def needs_exact(nodes, meta) -> set:
    """The FX nodes among ``nodes`` (a partition, in graph order) whose 16-bit results must
    be rounded where they are computed: a reader inside the partition needs the value as
    eager holds it (a discontinuous reader, one computing in another dtype), or is itself
    such a node and computes from it."""
    inside = set(nodes)
    exact: set = set()
    for node in reversed(nodes):
        out = meta(node)
        if out is None or out.dtype not in SIXTEEN_BIT:
            continue
        for user in node.users:
            if user not in inside:
                continue
            user_meta = meta(user)
            condition = user.target is aten.where.self and user.args[0] is node
            if user in exact or user.target in DISCONTINUOUS or condition:
                exact.add(node)
                break
            if user_meta is not None and user_meta.dtype != out.dtype and user_meta.dtype != torch.bool:
                exact.add(node)  # read by an operator of another dtype (a cast, a wider result)
                break
    return exact
