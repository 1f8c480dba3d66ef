"""Launching the interpreter on a GPU without Numba's per-call argument handling.

Numba's dispatcher costs 60-270 us per launch with array arguments (it typechecks
and marshals every argument on every call). The interpreter has one fixed
signature, so its parameters are packed by hand, once per program and tensor layout
(``PreparedLaunch``: a call only writes the base addresses), and the kernel is
launched with one ``cuLaunchKernel`` call through ctypes on PyTorch's current stream. The module is loaded from the disk-cached PTX
(``gint.kernel.interpreter.ptx``); the driver caches its own PTX->SASS JIT.

Parameter layout (22 x 8 bytes): each ``int{32,64}[::1]`` array argument is Numba's
array struct flattened (meminfo, parent, nitems, itemsize, data, shape[0],
strides[0]), then the ``MAX_SLOTS`` base addresses. ``tests/test_kernel_build.py``
checks that layout against Numba's data model and the PTX entry.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache

import torch

from gint import stats
from gint.isa import MAX_SLOTS
from gint.kernel import interpreter
from gint.kernel.config import DEFAULT, TILED, KernelConfig, for_capability

BLOCK = 256  # threads per block on the GPU
ARRAY_FIELDS = ("meminfo", "parent", "nitems", "itemsize", "data", "shape", "strides")
N_PARAMS = 2 * len(ARRAY_FIELDS) + MAX_SLOTS
_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16

_c_int, _c_size, _vp = ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p


class CudaError(RuntimeError):
    """A CUDA driver call failed."""


class _Driver:
    """The few libcuda entry points gint needs, with checked return codes."""

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as error:
            raise CudaError(f"cannot load the CUDA driver (libcuda.so.1): {error}") from None
        signatures = {
            "cuInit": [ctypes.c_uint],
            "cuDeviceGet": [ctypes.POINTER(_c_int), _c_int],
            "cuDeviceGetAttribute": [ctypes.POINTER(_c_int), _c_int, _c_int],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_vp), _c_int],
            "cuCtxGetCurrent": [ctypes.POINTER(_vp)],
            "cuCtxSetCurrent": [_vp],
            "cuModuleLoadData": [ctypes.POINTER(_vp), ctypes.c_char_p],
            "cuModuleGetFunction": [ctypes.POINTER(_vp), _vp, ctypes.c_char_p],
            "cuOccupancyMaxActiveBlocksPerMultiprocessor": [ctypes.POINTER(_c_int), _vp, _c_int, _c_size],
            "cuLaunchKernel": [_vp] + [ctypes.c_uint] * 7 + [_vp, ctypes.POINTER(_vp), ctypes.POINTER(_vp)],
            "cuGetErrorName": [_c_int, ctypes.POINTER(ctypes.c_char_p)],
        }
        for name, argtypes in signatures.items():
            function = getattr(self.lib, name)
            function.argtypes = argtypes
            function.restype = _c_int
        self.check(self.lib.cuInit(0), "cuInit")

    def check(self, result: int, what: str) -> None:
        if result != 0:
            name = ctypes.c_char_p()
            self.lib.cuGetErrorName(result, ctypes.byref(name))
            raise CudaError(f"{what} failed: {(name.value or b'?').decode()} ({result})")


@lru_cache(maxsize=1)
def driver() -> _Driver:
    return _Driver()


class KernelLauncher:
    """The interpreter loaded on one CUDA device, ready to launch."""

    def __init__(self, device_index: int, config: KernelConfig = DEFAULT, block: int = BLOCK):
        cu = driver()
        self.cu, self.device_index, self.block = cu, device_index, block
        torch.cuda.init()
        cc = torch.cuda.get_device_capability(device_index)
        self.config = for_capability(cc, config)
        self.tile_len = block * self.config.ept
        text = interpreter.ptx(cc, self.config)
        device = _c_int()
        cu.check(cu.lib.cuDeviceGet(ctypes.byref(device), device_index), "cuDeviceGet")
        self.context = _vp()
        cu.check(cu.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), device), "cuDevicePrimaryCtxRetain")
        self._make_current()
        self.module, self.function = _vp(), _vp()
        # the shipped cubin skips the driver's PTX JIT; a driver too old for it takes the PTX
        cubin = interpreter.shipped_cubin(cc, self.config)
        if cubin is None or cu.lib.cuModuleLoadData(ctypes.byref(self.module), cubin) != 0:
            cu.check(cu.lib.cuModuleLoadData(ctypes.byref(self.module), text.encode() + b"\0"), "cuModuleLoadData")
        name = interpreter.entry_name(text).encode()
        cu.check(cu.lib.cuModuleGetFunction(ctypes.byref(self.function), self.module, name), "cuModuleGetFunction")
        per_sm, sms = _c_int(), _c_int()
        cu.check(
            cu.lib.cuOccupancyMaxActiveBlocksPerMultiprocessor(ctypes.byref(per_sm), self.function, block, 0),
            "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        )
        cu.check(
            cu.lib.cuDeviceGetAttribute(ctypes.byref(sms), _CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device),
            "cuDeviceGetAttribute",
        )
        if per_sm.value == 0:
            raise CudaError(
                f"the interpreter ({self.config.tag}) cannot run blocks of {block} threads on this GPU "
                "(too many registers per block)"
            )
        self.blocks_per_sm, self.sm_count = per_sm.value, sms.value
        self.max_grid = max(1, per_sm.value * sms.value)

    def _make_current(self) -> None:
        current = _vp()
        self.cu.check(self.cu.lib.cuCtxGetCurrent(ctypes.byref(current)), "cuCtxGetCurrent")
        if current.value != self.context.value:
            self.cu.check(self.cu.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def grid_for(self, tiles: int) -> int:
        return max(1, min(tiles, self.max_grid))

    def prepare(self, grid: int, code: torch.Tensor, table: torch.Tensor) -> PreparedLaunch:
        """A launch of ``code`` over ``table`` with its parameters packed once: per call only
        the base addresses change (the conductor's per-call path)."""
        return PreparedLaunch(self, grid, code, table)


def _pack(params, code: torch.Tensor, table: torch.Tensor) -> None:
    """The two array arguments' fields (Numba's array struct, see the module docstring)."""
    params[2] = params[5] = code.numel()
    params[3] = params[6] = 4
    params[4] = code.data_ptr()
    params[9] = params[12] = table.numel()
    params[10] = params[13] = 8
    params[11] = table.data_ptr()


class PreparedLaunch:
    """One program over one tensor layout on one device: grid and parameter buffer made
    once (the code and table it points at live as long as their executable). Calling it
    writes the base addresses and launches on PyTorch's current stream."""

    def __init__(self, launcher: KernelLauncher, grid: int, code: torch.Tensor, table: torch.Tensor):
        self.launcher, self.grid = launcher, grid
        self.multi_row = launcher.config.multi_row_tiles
        self._keep = (code, table)  # the buffers the parameters point at
        self._params = (ctypes.c_uint64 * N_PARAMS)()
        _pack(self._params, code, table)
        base = ctypes.addressof(self._params)
        self._param_ptrs = (_vp * N_PARAMS)(*(base + 8 * i for i in range(N_PARAMS)))
        self._lock = threading.Lock()

    @property
    def stale(self) -> bool:
        """Whether its device now launches through another launcher (``use_launcher``)."""
        index = self.launcher.device_index
        return _launchers.get(index) is not self.launcher and _tiled.get(index) is not self.launcher

    def __call__(self, bases) -> None:
        launcher = self.launcher
        stream = current_stream(launcher.device_index)
        with self._lock:
            self._params[14:N_PARAMS] = bases
            launcher._make_current()
            result = launcher.cu.lib.cuLaunchKernel(
                launcher.function, self.grid, 1, 1, launcher.block, 1, 1, 0, stream, self._param_ptrs, None
            )
        if result != 0:
            launcher.cu.check(result, "cuLaunchKernel")
        stats.bump("launches")
        if self.multi_row:
            stats.bump("launches_multi_row")


_launchers: dict[int, KernelLauncher] = {}
_launchers_lock = threading.Lock()


def launcher_for(device_index: int) -> KernelLauncher:
    """The launcher of ``device_index``, loading the kernel there on first use."""
    launcher = _launchers.get(device_index)
    if launcher is None:
        with _launchers_lock:
            launcher = _launchers.get(device_index)
            if launcher is None:
                launcher = _launchers[device_index] = KernelLauncher(device_index)
    return launcher


def use_launcher(device_index: int, launcher: KernelLauncher) -> None:
    """Route launches on ``device_index`` through ``launcher`` (benchmarks compare kernel
    variants; a variant other than the default also turns the multi-row tile kernel off)."""
    with _launchers_lock:
        _launchers[device_index] = launcher
        _tiled.pop(device_index, None)  # launches already prepared on it become stale


_tiled: dict[int, KernelLauncher] = {}


def tiled_launcher_for(device_index: int) -> KernelLauncher | None:
    """The multi-row tile kernel's launcher (``KernelConfig.multi_row_tiles``) on
    ``device_index``, where the launches there go through the default kernel and the
    package ships the tiled kernel's PTX for this GPU (never a minute's build on a first
    launch); else None."""
    primary = launcher_for(device_index)
    cc = torch.cuda.get_device_capability(device_index)
    if primary.config != for_capability(cc, DEFAULT):
        return None
    launcher = _tiled.get(device_index)
    if launcher is None:
        tiled = for_capability(cc, TILED)
        if not (interpreter.prebuilt_path(cc, tiled).exists() or interpreter.ptx_cache_path(cc, tiled).exists()):
            return None
        with _launchers_lock:
            launcher = _tiled.get(device_index)
            if launcher is None:
                launcher = _tiled[device_index] = KernelLauncher(device_index, TILED)
    return launcher


def current_stream(device_index: int) -> int:
    """PyTorch's current stream on the device, as a raw handle (cheap: no Stream object)."""
    return torch._C._cuda_getCurrentRawStream(device_index)

