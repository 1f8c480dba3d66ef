"""Raw memory access for the interpreter: typed loads and stores at an int64 address,
and the bit casts the dtype conversions need.

One kernel reaches tensors of every dtype, so it cannot take typed arrays: it gets
base addresses and dtype codes from the tensor table. On the GPU these helpers are
Numba intrinsics that compile to single ``ld.global``/``st.global``/``cvt``
instructions. Numba's CUDA simulator cannot run intrinsics, so under it each helper
has a Python twin that reads and writes host memory at the same address through
ctypes (the simulator runs on CPU tensors, whose addresses are host addresses).
Everything above this module (dispatch, address arithmetic, dtype branches,
rounding) is the same code on both paths.
"""

from __future__ import annotations

from gint.kernel.target import SIMULATOR

__all__ = [
    "load_f32", "load_u16", "load_i32", "load_i64", "load_u8",
    "store_f32", "store_u16", "store_i32", "store_i64", "store_u8",
    "load_f32x4", "load_u16x4", "load_i32x4", "load_u8x4", "load_i32x2",
    "store_f32x4", "store_u16x4", "store_i32x4", "store_u8x4",
    "f16_bits_to_f32", "f32_to_f16_bits", "f32_to_bf16_bits", "f32_to_bits", "bits_to_f32", "prefetch_l2", "fresh", "warp_sync",
    "shuffle_xor", "max_nan", "min_nan",
]  # fmt: skip

# The x4 helpers move 4 consecutive elements with one vector access (x2: 2); the address
# must be aligned to the access's size (the caller checks).

if SIMULATOR:
    import ctypes

    from numba import cuda

    import numpy as np

    # Byte ranges [start, end) a launch may touch, or None: unchecked. The fuzzer sets
    # them (``guarded``), so that any access outside the program's tensors is an error
    # here, where on the GPU it would need compute-sanitizer to be seen.
    _allowed: list[tuple[int, int]] | None = None

    class guarded:
        """``with guarded(spans):`` every simulated load and store must fall in ``spans``."""

        def __init__(self, spans):
            self.spans = [(int(start), int(end)) for start, end in spans]

        def __enter__(self):
            global _allowed
            _allowed = self.spans

        def __exit__(self, *exc):
            global _allowed
            _allowed = None

    def _check_inside(addr, size):
        if _allowed is not None and not any(start <= addr and addr + size <= end for start, end in _allowed):
            raise RuntimeError(f"a {size}-byte access at {addr:#x} is outside every tensor of the launch")

    def _loader(ctype, convert):
        def load(addr):
            addr = int(addr)
            _check_inside(addr, ctypes.sizeof(ctype))
            return convert(ctype.from_address(addr).value)

        return load

    def _storer(ctype):
        def store(addr, value):
            addr = int(addr)
            _check_inside(addr, ctypes.sizeof(ctype))
            ctype.from_address(addr).value = int(value) if ctype is not ctypes.c_float else float(value)

        return store

    load_f32 = _loader(ctypes.c_float, np.float32)
    load_u16 = _loader(ctypes.c_uint16, np.int32)
    load_i32 = _loader(ctypes.c_int32, np.int32)
    load_i64 = _loader(ctypes.c_int64, np.int64)
    load_u8 = _loader(ctypes.c_uint8, np.int32)
    store_f32 = _storer(ctypes.c_float)
    store_u16 = _storer(ctypes.c_uint16)
    store_i32 = _storer(ctypes.c_int32)
    store_i64 = _storer(ctypes.c_int64)
    store_u8 = _storer(ctypes.c_uint8)

    def _check_aligned(addr, nbytes):
        # the GPU faults on a misaligned vector access; make the simulator as strict
        if int(addr) % nbytes:
            raise RuntimeError(f"misaligned {nbytes}-byte vector access at {int(addr):#x}")

    def _vector_loader(load, size, lanes=4):
        def load_lanes(addr):
            _check_aligned(addr, lanes * size)
            return tuple(load(addr + lane * size) for lane in range(lanes))

        return load_lanes

    def _vector_storer(store, size):
        def store4(addr, a, b, c, d):
            _check_aligned(addr, 4 * size)
            store(addr, a)
            store(addr + size, b)
            store(addr + 2 * size, c)
            store(addr + 3 * size, d)

        return store4

    load_f32x4 = _vector_loader(load_f32, 4)
    load_u16x4 = _vector_loader(load_u16, 2)
    load_i32x4 = _vector_loader(load_i32, 4)
    load_u8x4 = _vector_loader(load_u8, 1)
    load_i32x2 = _vector_loader(load_i32, 4, lanes=2)
    store_f32x4 = _vector_storer(store_f32, 4)
    store_u16x4 = _vector_storer(store_u16, 2)
    store_i32x4 = _vector_storer(store_i32, 4)
    store_u8x4 = _vector_storer(store_u8, 1)

    def prefetch_l2(addr, nbytes):
        """A hint with no effect on results; nothing to simulate."""

    def fresh(value):
        return value

    import threading

    WARP_BARRIER_TIMEOUT = 60.0  # seconds: lanes of a warp that never meet have diverged
    _warp_barriers: dict[tuple[int, int], threading.Barrier] = {}
    _warp_barriers_lock = threading.Lock()

    def reset_warp_barriers() -> None:
        """Forget every warp barrier (before a launch: an aborted one leaves broken ones)."""
        with _warp_barriers_lock:
            _warp_barriers.clear()

    def _meet_warp(tid, block):
        """Wait until every lane of thread ``tid``'s warp is here: the simulator's stand-in
        for a warp-wide ``bar.warp.sync``. Warps of a block stay independent, as on the GPU
        (a block barrier here would keep them in lock-step and hide races between them)."""
        warp = int(tid) // 32
        lanes = min(32, int(block) - 32 * warp)
        with _warp_barriers_lock:
            barrier = _warp_barriers.get((warp, lanes))
            if barrier is None:
                barrier = _warp_barriers[(warp, lanes)] = threading.Barrier(lanes)
        try:
            barrier.wait(WARP_BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"the lanes of warp {warp} diverged: not all reached the same warp barrier") from None

    @cuda.jit(device=True)  # so that the simulator gives ``cuda`` its thread-aware twin here
    def warp_sync():
        """``syncwarp``: the lanes of this thread's warp meet (see ``_meet_warp``)."""
        _meet_warp(cuda.threadIdx.x, cuda.blockDim.x)

    @cuda.jit(device=True)
    def shuffle_xor(value, lane_mask, exchange, tid):
        """``shfl.sync.bfly`` through shared memory: lane ``tid`` gets the value of lane
        ``tid ^ lane_mask`` (of its own warp: ``lane_mask`` < 32)."""
        exchange[tid] = value
        _meet_warp(tid, cuda.blockDim.x)
        other = exchange[tid ^ lane_mask]
        _meet_warp(tid, cuda.blockDim.x)
        return other

    def _ordered_zeros(a, b, pick):
        """``a`` or ``b`` by ``pick``; equal values (+0 and -0) by their sign bits: ``pick``
        is how the bit patterns combine (AND: +0 wins, as in a maximum; OR: -0 wins)."""
        bits = pick(int(f32_to_bits(a)), int(f32_to_bits(b)))
        return bits_to_f32(np.int32(bits))

    def max_nan(a, b):
        """IEEE 754-2019 maximum (PTX ``max.NaN.f32``): nan if either is nan, +0 above -0."""
        a, b = np.float32(a), np.float32(b)
        if a != a or b != b:
            return np.float32("nan")
        if a != b:
            return a if a > b else b
        return _ordered_zeros(a, b, lambda x, y: x & y)

    def min_nan(a, b):
        """IEEE 754-2019 minimum (PTX ``min.NaN.f32``): nan if either is nan, -0 below +0."""
        a, b = np.float32(a), np.float32(b)
        if a != a or b != b:
            return np.float32("nan")
        if a != b:
            return a if a < b else b
        return _ordered_zeros(a, b, lambda x, y: x | y)

    def f16_bits_to_f32(bits):
        return np.float32(np.array(int(bits) & 0xFFFF, np.uint16).view(np.float16))

    def f32_to_f16_bits(value):
        return np.int32(np.array(np.float32(value), np.float32).astype(np.float16).view(np.uint16))

    def f32_to_bits(value):
        return np.int32(np.array(np.float32(value), np.float32).view(np.int32))

    def f32_to_bf16_bits(value):
        """Round float32 to bfloat16 (nearest, ties to even), as the 16 stored bits; the
        GPU's ``cvt.rn.bf16.f32`` does the same (any NaN becomes a quiet NaN)."""
        value = np.float32(value)
        if value != value:
            return np.int32(0x7FC0)
        bits = int(np.array(value, np.float32).view(np.uint32))
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        return np.int32((bits >> 16) & 0xFFFF)

    def bits_to_f32(bits):
        return np.float32(np.array(np.int64(bits).astype(np.int32), np.int32).view(np.float32))

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    _GLOBAL = 1  # NVVM address space of device memory: gives ld.global / st.global

    def _global_ptr(builder, addr, lltype):
        return builder.inttoptr(addr, ir.PointerType(lltype, addrspace=_GLOBAL))

    def _make_load(word, result):
        """Load one ``word`` (an LLVM type) at an int64 address, widened to ``result``."""

        @intrinsic
        def load(typingctx, addr):
            if addr != types.int64:
                return None

            def codegen(context, builder, sig, args):
                value = builder.load(_global_ptr(builder, args[0], word))
                target = context.get_value_type(result)
                if value.type == target:
                    return value
                # narrower integer words are unsigned (u8 for bool, u16 for f16/bf16 bits)
                return builder.zext(value, target)

            return result(types.int64), codegen

        return load

    def _make_store(word, value_type):
        """Store a ``value_type`` at an int64 address as one ``word``, truncating."""

        @intrinsic
        def store(typingctx, addr, value):
            if addr != types.int64 or value != value_type:
                return None

            def codegen(context, builder, sig, args):
                address, value = args
                if value.type != word:
                    value = builder.trunc(value, word)
                builder.store(value, _global_ptr(builder, address, word))
                return context.get_dummy_value()

            return types.void(types.int64, value_type), codegen

        return store

    def _make_vector_load(word, result, count=4):
        """Load ``count`` consecutive ``word``s with one aligned vector access, each widened to ``result``."""

        @intrinsic
        def load4(typingctx, addr):
            if addr != types.int64:
                return None
            tuple_type = types.UniTuple(result, count)

            def codegen(context, builder, sig, args):
                vector_type = ir.VectorType(word, count)
                align = count * (word.width // 8 if isinstance(word, ir.IntType) else 4)
                vector = builder.load(_global_ptr(builder, args[0], vector_type), align=align)
                target = context.get_value_type(result)
                lanes = []
                for lane in range(count):
                    value = builder.extract_element(vector, ir.Constant(ir.IntType(32), lane))
                    lanes.append(value if value.type == target else builder.zext(value, target))
                return context.make_tuple(builder, tuple_type, lanes)

            return tuple_type(types.int64), codegen

        return load4

    def _make_vector_store(word, value_type):
        """Store 4 ``value_type``s as 4 consecutive ``word``s with one aligned vector access."""

        @intrinsic
        def store4(typingctx, addr, a, b, c, d):
            if addr != types.int64 or any(v != value_type for v in (a, b, c, d)):
                return None

            def codegen(context, builder, sig, args):
                vector_type = ir.VectorType(word, 4)
                align = 4 * (word.width // 8 if isinstance(word, ir.IntType) else 4)
                vector = ir.Constant(vector_type, ir.Undefined)
                for lane, value in enumerate(args[1:]):
                    if value.type != word:
                        value = builder.trunc(value, word)
                    vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), lane))
                builder.store(vector, _global_ptr(builder, args[0], vector_type), align=align)
                return context.get_dummy_value()

            return types.void(types.int64, value_type, value_type, value_type, value_type), codegen

        return store4

    _f32, _i8, _i16, _i32, _i64 = ir.FloatType(), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    load_f32 = _make_load(_f32, types.float32)
    load_u16 = _make_load(_i16, types.int32)
    load_i32 = _make_load(_i32, types.int32)
    load_i64 = _make_load(_i64, types.int64)
    load_u8 = _make_load(_i8, types.int32)
    store_f32 = _make_store(_f32, types.float32)
    store_u16 = _make_store(_i16, types.int32)
    store_i32 = _make_store(_i32, types.int32)
    store_i64 = _make_store(_i64, types.int64)
    store_u8 = _make_store(_i8, types.int32)
    load_f32x4 = _make_vector_load(_f32, types.float32)
    load_u16x4 = _make_vector_load(_i16, types.int32)
    load_i32x4 = _make_vector_load(_i32, types.int32)
    load_u8x4 = _make_vector_load(_i8, types.int32)
    load_i32x2 = _make_vector_load(_i32, types.int32, count=2)
    store_f32x4 = _make_vector_store(_f32, types.float32)
    store_u16x4 = _make_vector_store(_i16, types.int32)
    store_i32x4 = _make_vector_store(_i32, types.int32)
    store_u8x4 = _make_vector_store(_i8, types.int32)

    @intrinsic
    def warp_sync(typingctx):
        """``bar.warp.sync`` over all 32 lanes: orders the warp's shared-memory accesses."""

        def codegen(context, builder, sig, args):
            asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "bar.warp.sync 0xffffffff;", "~{memory}", side_effect=True)
            builder.call(asm, [])
            return context.get_dummy_value()

        return types.void(), codegen

    @intrinsic
    def shuffle_xor(typingctx, value, lane_mask, exchange, tid):
        """The value of lane ``lane ^ lane_mask`` of the warp (``shfl.sync.bfly``, all 32
        lanes take part); ``exchange`` and ``tid`` serve only the simulator's twin.

        Inline PTX rather than Numba's ``shfl_xor_sync``, whose NVVM-only intrinsic
        LLVM's NVPTX back end does not know."""
        if value != types.float32 or not isinstance(lane_mask, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            mask = builder.trunc(args[1], ir.IntType(32)) if args[1].type.width > 32 else args[1]
            asm_type = ir.FunctionType(ir.FloatType(), [ir.FloatType(), ir.IntType(32)])
            asm = ir.InlineAsm(asm_type, "shfl.sync.bfly.b32 $0, $1, $2, 31, -1;", "=f,f,r", side_effect=True)
            return builder.call(asm, [args[0], mask])

        return types.float32(value, lane_mask, exchange, tid), codegen

    @intrinsic
    def fresh(typingctx, value):
        """``value`` as a new SSA value the optimizer cannot see through (one PTX mov).

        A stack move (DUP, SWAP, PICK, ...) otherwise makes two stack variables share
        one SSA value; at the dispatch loop's join every such pair interferes and the
        compiler copies the whole stack on every iteration of the dispatch loop.
        """
        if value != types.float32:
            return None

        def codegen(context, builder, sig, args):
            asm = ir.InlineAsm(ir.FunctionType(ir.FloatType(), [ir.FloatType()]), "mov.b32 $0, $1;", "=f,f")
            return builder.call(asm, args)

        return types.float32(types.float32), codegen

    def _make_min_max(op):
        """IEEE 754-2019 ``op`` (PTX ``max.NaN.f32`` / ``min.NaN.f32``, sm_80+): nan if
        either operand is nan, and -0 below +0, as torch's CUDA maximum and minimum give."""

        @intrinsic
        def min_max(typingctx, a, b):
            if a != types.float32 or b != types.float32:
                return None

            def codegen(context, builder, sig, args):
                asm_type = ir.FunctionType(ir.FloatType(), [ir.FloatType(), ir.FloatType()])
                return builder.call(ir.InlineAsm(asm_type, f"{op}.NaN.f32 $0, $1, $2;", "=f,f,f"), args)

            return types.float32(types.float32, types.float32), codegen

        return min_max

    max_nan = _make_min_max("max")
    min_nan = _make_min_max("min")

    @intrinsic
    def prefetch_l2(typingctx, addr, nbytes):
        """Ask for ``nbytes`` (a multiple of 16, 16-byte aligned) at ``addr`` in L2 (sm_90+)."""
        if addr != types.int64 or nbytes != types.int32:
            return None

        def codegen(context, builder, sig, args):
            asm_type = ir.FunctionType(ir.VoidType(), [ir.IntType(64), ir.IntType(32)])
            asm = ir.InlineAsm(asm_type, "cp.async.bulk.prefetch.L2.global [$0], $1;", "l,r", side_effect=True)
            builder.call(asm, args)
            return context.get_dummy_value()

        return types.void(types.int64, types.int32), codegen

    @intrinsic
    def f16_bits_to_f32(typingctx, bits):
        if bits != types.int32:
            return None

        def codegen(context, builder, sig, args):
            half = builder.bitcast(builder.trunc(args[0], ir.IntType(16)), ir.HalfType())
            return builder.fpext(half, ir.FloatType())

        return types.float32(types.int32), codegen

    @intrinsic
    def f32_to_f16_bits(typingctx, value):
        if value != types.float32:
            return None

        def codegen(context, builder, sig, args):
            half = builder.fptrunc(args[0], ir.HalfType())  # round to nearest even
            return builder.zext(builder.bitcast(half, ir.IntType(16)), ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def f32_to_bf16_bits(typingctx, value):
        if value != types.float32:
            return None

        def codegen(context, builder, sig, args):
            # one F2F on sm_90: round to nearest even, as torch's float -> bfloat16
            asm = ir.InlineAsm(ir.FunctionType(ir.IntType(16), [ir.FloatType()]), "cvt.rn.bf16.f32 $0, $1;", "=h,f")
            return builder.zext(builder.call(asm, args), ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def f32_to_bits(typingctx, value):
        if value != types.float32:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @intrinsic
    def bits_to_f32(typingctx, bits):
        if bits != types.int32:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen
