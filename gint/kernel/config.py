"""The kernel's compile-time shape: elements per thread, vector width, L2 prefetch.

One configuration is THE kernel (``DEFAULT``, with prefetch only where the GPU has
the instruction); others exist so that benchmarks can measure the alternatives in
the same run. Each configuration is one build, cached on disk like the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class KernelConfig:
    ept: int = 8  # elements per thread per tile; the stack is MAX_DEPTH x ept registers
    vec: int = 4  # a thread's elements come in runs of vec consecutive ones (one vector access)
    prefetch: int = 1  # bulk-prefetch into L2 the tile this many grid strides ahead (0: off; sm_90+)
    max_registers: int = 128  # per thread: 2 resident blocks of 256 threads per SM (ptxas .maxnreg)
    backend: str = "nvptx"  # LLVM IR -> PTX: "nvptx" (LLVM, jump-table dispatch) or "nvvm" (compare trees)
    # a tile holds several rows shorter than half a tile (gint.kernel.tiles, gint.kernel.tilecode):
    # a kernel of its own (``TILED``), launched where the host's layout prefers it
    # (``gint.host.layout.TensorLayout.prefers_multi_row``)
    multi_row_tiles: bool = field(default=False, repr=False)  # out of repr: the default source stays as shipped
    # the dispatch indexes its jump table with the key directly: no range check, the next key
    # loaded in place (gint.kernel.switches.without_range_check, gint.kernel.ptx_dispatch)
    direct_dispatch: bool = field(default=False, repr=False)

    def __post_init__(self):
        if self.vec != 4 or self.ept % self.vec or self.ept <= 0:
            raise ValueError(f"unsupported kernel config {self}: vec must be 4 and divide ept")
        if self.backend not in ("nvptx", "nvvm"):
            raise ValueError(f"unsupported kernel config {self}: backend must be 'nvptx' or 'nvvm'")

    @property
    def groups(self) -> int:
        return self.ept // self.vec

    @property
    def tag(self) -> str:
        tiles = "-rows" if self.multi_row_tiles else ""
        direct = "-dd" if self.direct_dispatch else ""
        return f"e{self.ept}v{self.vec}p{self.prefetch}r{self.max_registers}-{self.backend}{tiles}{direct}"


DEFAULT = KernelConfig()
TILED = replace(DEFAULT, multi_row_tiles=True)


def for_capability(cc: tuple[int, int], config: KernelConfig = DEFAULT) -> KernelConfig:
    """``config`` adjusted to what compute capability ``cc`` can run."""
    if cc < (9, 0) and config.prefetch:
        config = replace(config, prefetch=0)  # cp.async.bulk.prefetch is sm_90+
    return config
