"""Which machine the kernel is built for: a real GPU or Numba's CUDA simulator.

Numba decides once, at import, from ``NUMBA_ENABLE_CUDASIM``; gint follows it. The
simulator runs the same interpreter source as Python threads over CPU tensors, which
is how the test suite exercises the real kernel on machines without a GPU.
"""

from numba.cuda.core import config as _numba_cuda_config

SIMULATOR: bool = bool(_numba_cuda_config.ENABLE_CUDASIM)
