"""Running programs over tensors.

``run(program, tensors)`` validates the tensors (device, dtype, shape, strides,
overlap) with clear errors, plans their layout, and launches the interpreter on
PyTorch's current CUDA stream without synchronizing. With Numba's CUDA simulator
enabled (no GPU), it runs CPU tensors through the simulated kernel instead.

``Executable`` is the part that is computed once per program: the verified,
encoded bytecode and, per device and tensor layout, the uploaded tensor table.
The conductor calls ``Executable.launch`` directly with precomputed layouts, so
nothing on that path depends on the graph.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import torch

from gint import abi, isa, stats
from gint.host import layout as layouts
from gint.host.program import Program, encode
from gint.host.verifier import verify
from gint.kernel.config import DEFAULT, TILED
from gint.kernel.target import SIMULATOR

# The simulator runs each thread as a Python thread: launches stay small, but a block has
# two warps, so that what differs between warps (row records, warp barriers, shuffles)
# is exercised on the CPU too.
SIM_BLOCK = 64
SIM_MAX_GRID = 2
SIM_CONFIG = DEFAULT  # the kernel configuration the simulator runs (tests switch paths on here)
# Layouts whose rows leave a one-row tile mostly idle run on the multi-row tile kernel
# (``TensorLayout.prefers_multi_row``); ``GINT_MULTI_ROW_TILES=0`` keeps every launch on
# the default kernel.
MULTI_ROW_TILES = os.environ.get("GINT_MULTI_ROW_TILES", "1") not in ("0", "")
_simulator_lock = threading.Lock()  # Numba's simulator runs one kernel at a time


def _multi_row(layout: layouts.TensorLayout, row_program: bool, tile_len: int) -> bool:
    """Whether this layout runs on the multi-row tile kernel (GPU and simulator alike)."""
    return MULTI_ROW_TILES and not row_program and layout.prefers_multi_row(tile_len)


class ExecutionError(ValueError):
    """Tensors that a program cannot run on, with the reason."""


class Executable:
    """A verified program with its encoding, ready to launch on any layout."""

    def __init__(self, program: Program):
        self.program = program
        self.depths = tuple(verify(program))
        self.words = tuple(encode(program, self.depths))  # immutable: what launches is what was verified
        self.stored = program.stored_slots
        self.row_program = program.is_row_program
        self.once_per_row = frozenset(program.once_per_row_slots)
        self._code: dict[torch.device, torch.Tensor] = {}
        self._tables: dict[tuple[torch.device, layouts.TensorLayout], torch.Tensor] = {}
        self._launches: dict[tuple[torch.device, layouts.TensorLayout], object] = {}  # PreparedLaunch
        self._lock = threading.Lock()
        stats.bump("programs_built")

    def plan(self, tensors: Sequence[torch.Tensor], reduce_dims: Sequence[int] | None = None) -> layouts.TensorLayout:
        """The layout of ``tensors``; a row program reduces ``reduce_dims`` of the broadcast
        shape (by default the last)."""
        if self.row_program and reduce_dims is None:
            reduce_dims = (-1,)
        return layouts.plan(
            [t.shape for t in tensors],
            [t.stride() for t in tensors],
            [t.dtype for t in tensors],
            stored=self.stored,
            keep_row=self.program.uses_offsets,
            reduce_dims=reduce_dims if self.row_program else None,
            per_row=self.once_per_row,
            loaded=self.program.loaded_slots,
        )

    def code_on(self, device: torch.device) -> torch.Tensor:
        code = self._code.get(device)
        if code is None:
            with self._lock:
                code = self._code.get(device)
                if code is None:
                    code = self._code[device] = _upload(self.words, torch.int32, device)
        return code

    def table_on(self, device: torch.device, layout: layouts.TensorLayout) -> torch.Tensor:
        key = (device, layout)
        table = self._tables.get(key)
        if table is None:
            with self._lock:
                table = self._tables.get(key)
                if table is None:
                    table = self._tables[key] = _upload(layout.words(), torch.int64, device)
        return table

    def launch(self, layout: layouts.TensorLayout, tensors: Sequence[torch.Tensor]) -> None:
        """Run over ``tensors`` laid out as ``layout``, which ``plan`` made for tensors of
        exactly these shapes, strides and dtypes (checked: a layout of other tensors would
        send the kernel outside these)."""
        if layout.signature != layouts.signature(tensors):
            raise ExecutionError(
                "the layout was planned for other tensors (shapes, strides or dtypes differ); plan it for these"
            )
        self.launch_planned(layout, tensors)

    def launch_planned(self, layout: layouts.TensorLayout, tensors: Sequence[torch.Tensor]) -> None:
        """``launch`` without its check, for callers whose tensors are by construction the
        ones ``layout`` was planned for (a compiled subgraph plans per input signature and
        allocates its outputs from that plan)."""
        if layout.numel == 0:
            return
        bases = [t.data_ptr() for t in tensors]
        if not layout.host_domain:
            self._launch(layout, tensors[0].device, bases)
            return
        sizes = [t.element_size() for t in tensors]
        for offsets in layout.host_offsets():
            self._launch(layout, tensors[0].device, [b + o * n for b, o, n in zip(bases, offsets, sizes)])

    def _launch(self, layout: layouts.TensorLayout, device: torch.device, bases: list[int]) -> None:
        bases = bases + [0] * (isa.MAX_SLOTS - len(bases))
        if SIMULATOR:
            code, table = self.code_on(device), self.table_on(device, layout)
            _launch_simulated(code, table, bases, layout, self.row_program)
            return
        prepared = self._launches.get((device, layout))
        if prepared is None or prepared.stale:
            prepared = self._prepare(device, layout)
        prepared(bases)

    def _prepare(self, device: torch.device, layout: layouts.TensorLayout):
        from gint.host.launcher import launcher_for, tiled_launcher_for

        launcher = launcher_for(device.index)
        if _multi_row(layout, self.row_program, launcher.tile_len):
            launcher = tiled_launcher_for(device.index) or launcher
        multi_row = launcher.config.multi_row_tiles
        grid = launcher.grid_for(layout.blocks(launcher.block, launcher.tile_len, self.row_program, multi_row))
        current = self._launches.get((device, layout))
        if current is not None and current.launcher is launcher:
            return current
        prepared = self._launches[(device, layout)] = launcher.prepare(
            grid, self.code_on(device), self.table_on(device, layout)
        )
        return prepared


_pools: dict[torch.device, object] = {}
_upload_streams: dict[torch.device, torch.cuda.Stream] = {}
_upload_lock = threading.Lock()


def _upload(words: list[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``words`` as a tensor on ``device``, complete there before this returns.

    The bytecode and tensor tables are cached per program and layout and then read by
    launches on any thread's current stream; a copy queued on the uploading thread's
    stream could still be waiting behind that stream's work when another stream launches
    a kernel that reads it. So the copy goes on gint's own stream, which holds nothing
    else, and the host waits for that copy alone (microseconds; once per program and
    layout), never for the caller's streams."""
    host = torch.tensor(words, dtype=dtype, device="cpu")  # explicit: callers may set a default device
    if device.type == "cpu":
        return host
    if torch.cuda.is_current_stream_capturing():
        # A copy captured from a temporary host buffer would replay stale memory.
        raise ExecutionError(
            "gint met a new program or tensor layout while a CUDA graph was being captured; run the "
            "compiled function once with these shapes before capturing (torch's CUDA graph trees and "
            'options={"cuda_graphs": True} do that warm-up themselves)'
        )
    # Cached for the life of the program, so allocated from gint's own memory pool: never
    # from a CUDA graph's private pool (CUDA graph trees warm up in one and reject
    # allocations that outlive the run). One upload at a time: torch's allocator ends a
    # pool's routing by pool id, so two threads inside ``use_mem_pool`` at once could end
    # each other's.
    with _upload_lock:
        pool = _pools.get(device)
        if pool is None:
            pool = _pools[device] = torch.cuda.MemPool()
        stream = _upload_streams.get(device)
        if stream is None:
            stream = _upload_streams[device] = torch.cuda.Stream(device)
        with torch.cuda.use_mem_pool(pool, device=device), torch.cuda.stream(stream):
            copy = host.pin_memory().to(device, non_blocking=True)
        stream.synchronize()
    return copy


def _launch_simulated(code: torch.Tensor, table: torch.Tensor, bases: list[int], layout, row_program: bool) -> None:
    from gint.kernel.interpreter import simulator_kernel

    from gint.kernel.memory import reset_warp_barriers

    config = SIM_CONFIG
    if config == DEFAULT and _multi_row(layout, row_program, SIM_BLOCK * config.ept):
        config = TILED
        stats.bump("launches_multi_row")
    blocks = layout.blocks(SIM_BLOCK, SIM_BLOCK * config.ept, row_program, config.multi_row_tiles)
    grid = max(1, min(blocks, SIM_MAX_GRID))
    with _simulator_lock:
        reset_warp_barriers()
        simulator_kernel(config)[grid, SIM_BLOCK](code.numpy(), table.numpy(), *bases)
    stats.bump("launches")


_executables: dict[Program, Executable] = {}
_executables_lock = threading.Lock()


def prepare(program: Program) -> Executable:
    """The (cached) executable of ``program``; raises ``VerificationError`` if invalid."""
    executable = _executables.get(program)
    if executable is None:
        executable = Executable(program)
        with _executables_lock:
            executable = _executables.setdefault(program, executable)
    return executable


# ------------------------------------------------------------------ validation


def _span(t: torch.Tensor) -> tuple[int, int]:
    """Byte range [start, end) that ``t`` can touch."""
    if t.numel() == 0:
        return t.data_ptr(), t.data_ptr()
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


def check_tensors(program: Program, tensors: Sequence) -> None:
    """Raise ``ExecutionError`` unless ``tensors`` can be the slots of ``program``."""
    if program.n_slots == 0:
        raise ExecutionError("the program has no tensor slots: there is nothing to run it over")
    if len(tensors) != program.n_slots:
        names = ", ".join(program.slot_names)
        raise ExecutionError(f"program takes {program.n_slots} tensor(s) ({names}), got {len(tensors)}")
    for slot, t in enumerate(tensors):
        name = program.slot_names[slot]
        if not isinstance(t, torch.Tensor):
            raise ExecutionError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in abi.DTYPE_CODE:
            supported = ", ".join(str(d).removeprefix("torch.") for d in abi.DTYPE_CODE)
            raise ExecutionError(f"{name}: dtype {t.dtype} is not supported (supported: {supported})")
        if t.device != tensors[0].device:
            raise ExecutionError(f"{name} is on {t.device} but {program.slot_names[0]} is on {tensors[0].device}")
    device = tensors[0].device if tensors else torch.device("cpu")
    if SIMULATOR and device.type != "cpu":
        raise ExecutionError(
            f"tensors are on {device}, but Numba's CUDA simulator is enabled (NUMBA_ENABLE_CUDASIM=1): "
            "the simulated kernel runs CPU tensors"
        )
    if not SIMULATOR and device.type != "cuda":
        raise ExecutionError(
            f"tensors are on {device}; gint runs CUDA tensors (CPU tensors run only under Numba's "
            "CUDA simulator: set NUMBA_ENABLE_CUDASIM=1 before numba is imported)"
        )
    for slot in sorted(program.stored_slots):
        out = tensors[slot]
        name = program.slot_names[slot]
        if _overlaps_itself(out):
            raise ExecutionError(f"{name} is written but overlaps itself in memory (strides {out.stride()})")
        start, end = _span(out)
        for other_slot, other in enumerate(tensors):
            o_start, o_end = _span(other)
            if other_slot == slot or not (o_start < end and start < o_end):
                continue
            if _same_view(out, other) and _reads_before_writes(program, other_slot, slot):
                continue  # each element is read before the same thread overwrites it
            raise ExecutionError(
                f"{name} is written but overlaps {program.slot_names[other_slot]} in memory; only an "
                "identical view that the program reads (at offset 0) before its first write may alias it"
            )


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.data_ptr(), a.shape, a.stride(), a.dtype) == (b.data_ptr(), b.shape, b.stride(), b.dtype)


def _reads_before_writes(program: Program, read_slot: int, written_slot: int) -> bool:
    """Whether every access of ``read_slot`` is an offset-0 load before the first store to
    ``written_slot``, which itself stores at offset 0."""
    load_op, store_op = isa.BY_NAME["LOAD"].opcode, isa.BY_NAME["STORE"].opcode
    written = False
    for opcode, operand in program.code:
        slot, offset = isa.decode_slot(operand) if opcode in (load_op, store_op) else (None, 0)
        if opcode == store_op and slot == written_slot:
            written = True
            if offset != 0:
                return False
        if slot == read_slot and (written or offset != 0 or opcode == store_op):
            return False
    return True


def _overlaps_itself(t: torch.Tensor) -> bool:
    """Whether two elements of ``t`` may share memory. Conservative: true unless each
    stride, in increasing order, clears the extent of all smaller-stride dimensions."""
    extent = 0
    dims = sorted(((st, s) for s, st in zip(t.shape, t.stride()) if s > 1))
    for stride, size in dims:
        if stride <= extent:
            return True
        extent += (size - 1) * stride
    return False


def _check_autograd(program: Program, tensors: Sequence[torch.Tensor]) -> None:
    """gint writes tensors outside autograd: refuse what eager's in-place ops refuse, and
    anything autograd would record (the write would be invisible to backward)."""
    if not torch.is_grad_enabled():
        return
    for slot in sorted(program.stored_slots):
        t = tensors[slot]
        if t.requires_grad:
            what = "a leaf tensor" if t.is_leaf else "a tensor"
            raise ExecutionError(
                f"{program.slot_names[slot]} is {what} that requires grad; gint writes it outside autograd "
                "(run under torch.no_grad(), or write a tensor that does not require grad)"
            )


def run(program: Program, tensors: Sequence[torch.Tensor]) -> None:
    """Run ``program`` over ``tensors`` (slot order), writing its stored slots in place.

    Written tensors get their version counters bumped, as an in-place op would: autograd
    then refuses a backward that needs their old values."""
    executable = prepare(program)
    check_tensors(program, tensors)
    _check_autograd(program, tensors)
    try:
        layout = executable.plan(tensors)
    except layouts.LayoutError as error:
        raise ExecutionError(str(error)) from None
    executable.launch_planned(layout, list(tensors))
    for slot in program.stored_slots:
        torch.autograd.graph.increment_version(tensors[slot])
