"""The one gint kernel: built from generated source, compiled once, cached on disk.

``kernel_module()`` writes the generated interpreter source (``gint.kernel.codegen``)
to a content-addressed file and imports it, so Numba and tracebacks see real source
lines. Under Numba's CUDA simulator ``simulator_kernel()`` wraps it with
``cuda.jit``; for a GPU ``ptx(cc)`` compiles it to PTX with Numba and caches the
text on disk, keyed by the kernel source digest (which covers the instruction table
and the device code), the compute capability and the Numba version. A new process
with a warm cache never runs Numba's compiler.

There is exactly one kernel signature, so there is exactly one build per GPU
architecture: new graphs, shapes and dtypes only change the data the kernel reads.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
import types as pytypes
from functools import lru_cache
from pathlib import Path

from gint import abi, stats
from gint.isa import MAX_SLOTS
from gint.kernel import codegen, fastlive, fastssa, nvptx
from gint.kernel.config import DEFAULT, KernelConfig, for_capability
from gint.kernel.target import SIMULATOR

_lock = threading.Lock()


def cache_dir() -> Path:
    """Where built kernels live: ``$GINT_CACHE_DIR`` or ``~/.cache/gint``."""
    root = os.environ.get("GINT_CACHE_DIR") or Path.home() / ".cache" / "gint"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


@lru_cache(maxsize=None)
def kernel_module(config: KernelConfig = DEFAULT) -> pytypes.ModuleType:
    """The generated interpreter, imported from its source file."""
    digest = codegen.source_digest(config)
    path = cache_dir() / f"gint_interpreter_{digest}.py"
    source = codegen.kernel_source(config)
    if not path.exists() or path.read_text() != source:
        _write_atomic(path, source)
    name = f"gint._generated.interpreter_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def simulator_kernel(config: KernelConfig = DEFAULT):
    """The interpreter as a Numba simulator kernel (CPU tensors, Python threads)."""
    if not SIMULATOR:
        raise RuntimeError("simulator_kernel() needs NUMBA_ENABLE_CUDASIM=1 set before numba is imported")
    from numba import cuda

    from gint.kernel import sim_blocks

    sim_blocks.install()
    stats.bump("kernel_builds")
    return cuda.jit(getattr(kernel_module(config), abi.KERNEL_NAME))


def kernel_signature():
    from numba import types

    return (types.int32[::1], types.int64[::1]) + (types.int64,) * MAX_SLOTS


@contextlib.contextmanager
def _device_functions_for(cc: tuple[int, int]):
    """Let device functions compile for ``cc`` with no GPU present.

    Numba compiles each ``cuda.jit(device=True)`` callee for the *current device's*
    compute capability, which needs a driver even inside ``compile_ptx(cc=...)``.
    Inlining the callees instead made Numba's own passes take minutes on this
    kernel. So for the duration of the build the callees are told the target cc.
    """
    import numba.cuda.dispatcher as dispatcher

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = original


@contextlib.contextmanager
def _deep_recursion(limit: int = 20000):
    """Numba's SSA pass recurses once per dominating block: a variable read deep in the
    dispatch chain (ROWMASK's chunk position) goes far past Python's default limit."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def ptx_cache_path(cc: tuple[int, int], config: KernelConfig) -> Path:
    import numba_cuda

    version = getattr(numba_cuda, "__version__", "unknown")
    digest = codegen.source_digest(config)
    return cache_dir() / f"gint_{digest}_{config.tag}_sm{cc[0]}{cc[1]}_numba-cuda-{version}.ptx"


PREBUILT_DIR = Path(__file__).parent / "prebuilt"


def prebuilt_path(cc: tuple[int, int], config: KernelConfig) -> Path:
    """Where the package ships PTX built from exactly this source (``--prebuild``)."""
    return PREBUILT_DIR / f"gint_{codegen.source_digest(config)}_{config.tag}_sm{cc[0]}{cc[1]}.ptx"


def prebuilt_cubin_path(cc: tuple[int, int], config: KernelConfig) -> Path:
    """The shipped SASS (ptxas output) of the shipped PTX: loads without the driver's JIT."""
    return prebuilt_path(cc, config).with_suffix(".cubin")


def shipped_cubin(cc: tuple[int, int], config: KernelConfig = DEFAULT) -> bytes | None:
    """The cubin the package ships for exactly this source and ``cc``, if any."""
    path = prebuilt_cubin_path(cc, for_capability(cc, config))
    return path.read_bytes() if path.exists() else None


def ptx(
    cc: tuple[int, int], config: KernelConfig = DEFAULT, *, from_source: bool = False, rebuild: bool = False
) -> str:
    """PTX of the interpreter for compute capability ``cc``: from the disk cache, else the
    PTX shipped in the package for this exact source, else built (about a minute: Numba).

    ``config`` is first adjusted to what ``cc`` supports (``config.for_capability``).
    ``from_source`` skips the shipped PTX: the result is Numba's build of this source,
    from the cache if an earlier build of the same source digest left it there (the dev
    loop: unchanged source, seconds), else built now. ``rebuild`` builds even then and
    replaces the cached copy (after a Numba or LLVM upgrade, which the digest misses).
    """
    if SIMULATOR:
        raise RuntimeError("PTX cannot be built with NUMBA_ENABLE_CUDASIM=1; unset it")
    config = for_capability(cc, config)
    path = ptx_cache_path(cc, config)
    with _lock:
        if path.exists() and not rebuild:
            return path.read_text()
        shipped = prebuilt_path(cc, config)
        if shipped.exists() and not (from_source or rebuild):
            return shipped.read_text()
        text = cap_registers(_build(cc, config), config.max_registers)
        stats.bump("kernel_builds")
        _write_atomic(path, text)
        return text


def _build(cc: tuple[int, int], config: KernelConfig) -> str:
    """Numba: type and lower the interpreter, then LLVM (or NVVM) to PTX. Meanwhile Numba's
    block liveness is ``gint.kernel.fastlive``'s and its SSA pass remembers reaching
    definitions (``gint.kernel.fastssa``): the same PTX, in ~1 minute instead of ~7."""
    from numba import cuda

    function = getattr(kernel_module(config), abi.KERNEL_NAME)
    with _device_functions_for(cc), _deep_recursion(), fastlive.installed(), fastssa.installed():
        if config.backend == "nvptx":
            modules = nvptx.kernel_llvm_ir(function, kernel_signature(), cc)
            return nvptx.ptx_from_llvm_ir(modules, cc, config.direct_dispatch)
        text, _ = cuda.compile_ptx(function, kernel_signature(), cc=cc)
        return text


def cap_registers(ptx_text: str, registers: int) -> str:
    """Add a ``.maxnreg`` directive to the kernel entry, so ptxas keeps the register
    count (and with it the resident blocks per SM) where the configuration wants it."""
    text, count = re.subn(r"(\.entry\s+\S+\s*\(.*?\))", rf"\1\n.maxnreg {registers}", ptx_text, count=1, flags=re.S)
    if count != 1:
        raise RuntimeError("no .entry in the interpreter's PTX")
    return text


def entry_name(ptx_text: str) -> str:
    """The mangled name of the kernel entry in ``ptx_text``."""
    match = re.search(r"\.entry\s+(\S+)\s*\(", ptx_text)
    if match is None:
        raise RuntimeError("no .entry in the interpreter's PTX")
    return match.group(1)


def entry_params(ptx_text: str) -> list[str]:
    """The PTX types of the kernel's parameters, in order (e.g. ``['.u64', ...]``)."""
    match = re.search(r"\.entry\s+\S+\s*\((.*?)\)", ptx_text, re.S)
    return re.findall(r"\.param\s+(\.\w+)", match.group(1)) if match else []
