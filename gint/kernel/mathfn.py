"""float32 math functions for instruction expressions: libdevice on the GPU, numpy
(which keeps float32) under the simulator, both from one table."""

from __future__ import annotations

import numpy as np

from gint.kernel.target import SIMULATOR

# gint name: (libdevice function, numpy function with the same float32 semantics)
FUNCTIONS: dict[str, tuple[str, object]] = {
    "fabs": ("fabsf", np.fabs),
    "floor": ("floorf", np.floor),
    "ceil": ("ceilf", np.ceil),
    "trunc": ("truncf", np.trunc),
    "rint": ("rintf", np.rint),  # round half to even, as torch.round
    "fmod": ("fmodf", np.fmod),
    "copysign": ("copysignf", np.copysign),
}


def _build(name: str, libdevice_name: str, numpy_fn):
    if SIMULATOR:

        def simulated(*args):
            return np.float32(numpy_fn(*(np.float32(a) for a in args)))

        simulated.__name__ = name
        return simulated
    from numba import cuda
    from numba.cuda import libdevice

    target = getattr(libdevice, libdevice_name)
    arity = numpy_fn.nin
    if arity == 1:

        def unary(x):
            return target(x)

        return cuda.jit(device=True)(unary)

    def binary(x, y):
        return target(x, y)

    return cuda.jit(device=True)(binary)


for _name, (_libdevice, _numpy) in FUNCTIONS.items():
    globals()[_name] = _build(_name, _libdevice, _numpy)

__all__ = list(FUNCTIONS)
