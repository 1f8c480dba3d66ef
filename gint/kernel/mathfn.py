"""float32 math for instruction expressions and the MATH instruction's functions.

Library functions come from one table: libdevice on the GPU, a numpy (or, where
numpy has none, a float64 ``math``) twin with float32 results under the simulator.
Composite functions (sigmoid, gelu, rounding to 16-bit floats, remainder) are
written once over those, in plain Python that Numba compiles and the simulator runs.
Each follows the formula PyTorch's CUDA kernels use, so results match torch's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from gint.kernel.memory import bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits
from gint.kernel.target import SIMULATOR

float32, int32, int64 = np.float32, np.int32, np.int64


def _rsqrt(x):
    return np.float32(1.0) / np.sqrt(x)


# gint name: (libdevice function, arity, simulator twin with the same float32 semantics)
LIBRARY: dict[str, tuple[str, int, object]] = {
    "fabs": ("fabsf", 1, np.fabs),
    "floor": ("floorf", 1, np.floor),
    "ceil": ("ceilf", 1, np.ceil),
    "trunc": ("truncf", 1, np.trunc),
    "rint": ("rintf", 1, np.rint),  # round half to even, as torch.round
    "fmod": ("fmodf", 2, np.fmod),
    "copysign": ("copysignf", 2, np.copysign),
    "exp": ("expf", 1, np.exp),
    "exp2": ("exp2f", 1, np.exp2),
    "expm1": ("expm1f", 1, np.expm1),
    "log": ("logf", 1, np.log),
    "log2": ("log2f", 1, np.log2),
    "log10": ("log10f", 1, np.log10),
    "log1p": ("log1pf", 1, np.log1p),
    "sqrt": ("sqrtf", 1, np.sqrt),
    "rsqrt": ("rsqrtf", 1, _rsqrt),
    "sin": ("sinf", 1, np.sin),
    "cos": ("cosf", 1, np.cos),
    "tan": ("tanf", 1, np.tan),
    "asin": ("asinf", 1, np.arcsin),
    "acos": ("acosf", 1, np.arccos),
    "atan": ("atanf", 1, np.arctan),
    "sinh": ("sinhf", 1, np.sinh),
    "cosh": ("coshf", 1, np.cosh),
    "tanh": ("tanhf", 1, np.tanh),
    "asinh": ("asinhf", 1, np.arcsinh),
    "acosh": ("acoshf", 1, np.arccosh),
    "atanh": ("atanhf", 1, np.arctanh),
    "erf": ("erff", 1, lambda x: math.erf(float(x))),
    "erfc": ("erfcf", 1, lambda x: math.erfc(float(x))),
    "pow": ("powf", 2, np.power),
    "atan2": ("atan2f", 2, np.arctan2),
}


def _build(name: str, libdevice_name: str, arity: int, twin):
    if SIMULATOR:

        def simulated(*args):
            with np.errstate(all="ignore"):
                return np.float32(twin(*(np.float32(a) for a in args)))

        simulated.__name__ = name
        return simulated
    from numba.cuda import libdevice

    target = getattr(libdevice, libdevice_name)
    if arity == 1:

        def unary(x):
            return target(x)

        return cuda.jit(device=True)(unary)

    def binary(x, y):
        return target(x, y)

    return cuda.jit(device=True)(binary)


for _name, (_libdevice, _arity, _twin) in LIBRARY.items():
    globals()[_name] = _build(_name, _libdevice, _arity, _twin)


def device(fn):
    """Compile ``fn`` as a Numba device function, or leave it Python under the simulator."""
    return fn if SIMULATOR else cuda.jit(device=True)(fn)


_ZERO, _ONE, _HALF = float32(0.0), float32(1.0), float32(0.5)
_SQRT1_2 = float32(0.7071067811865476)
_GELU_BETA = float32(0.7978845608028654)  # sqrt(2 / pi)
_GELU_KAPPA = float32(0.044715)


@device
def sigmoid(x):
    return _ONE / (_ONE + exp(-x))  # noqa: F821  (defined from LIBRARY above)


@device
def gelu(x):
    return x * _HALF * (_ONE + erf(x * _SQRT1_2))  # noqa: F821


@device
def gelu_tanh(x):
    inner = _GELU_BETA * (x + _GELU_KAPPA * x * x * x)
    return _HALF * x * (_ONE + tanh(inner))  # noqa: F821


@device
def remainder(x, y):
    """torch.remainder for floats: the result takes the divisor's sign."""
    r = fmod(x, y)  # noqa: F821
    if r != _ZERO and (r < _ZERO) != (y < _ZERO):
        r = r + y
    return r


@device
def round_to_bf16(x):
    """x rounded to bfloat16 (nearest, ties to even) and back: what a cast does."""
    return bits_to_f32(int32(f32_to_bf16_bits(x) << 16))


@device
def round_to_f16(x):
    return f16_bits_to_f32(f32_to_f16_bits(x))


__all__ = [*LIBRARY, "sigmoid", "gelu", "gelu_tanh", "remainder", "round_to_bf16", "round_to_f16"]
