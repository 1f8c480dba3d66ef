"""The executor's validation (clear ExecutionErrors before anything launches), the
layout planner's coalescing, and the launch/build counters."""

import itertools

import pytest
import torch

import gint
from gint import abi
from gint.host import executor
from gint.host.executor import ExecutionError
from gint.host.frontend import Assembler, bytecode
from gint.host.layout import LayoutError, coalesce, plan

F32 = torch.float32


def counts() -> dict[str, int]:
    """gint's event counters (``gint.counters()``; ``gint.counters.snapshot()`` before the rename)."""
    counters = gint.counters
    return counters() if callable(counters) else counters.snapshot()


@bytecode
def axpy(x, y, out):
    out.store(x.load() * 2.0 + y.load())


@bytecode
def stencil(x, out):
    out.store(x.load(-1) - x.load(1))


def randn(target, *shape):
    return torch.randn(shape or (target.numel,), device=target.device)


@pytest.fixture
def no_launch(monkeypatch):
    """Fail the test if anything reaches the kernel."""

    def launched(*args, **kwargs):
        raise AssertionError("the kernel was launched")

    monkeypatch.setattr(executor, "_launch_simulated", launched)
    monkeypatch.setattr(executor.Executable, "launch", launched)


# ------------------------------------------------------------------- validation


def test_wrong_number_of_tensors(target, no_launch):
    x, y = randn(target), randn(target)
    with pytest.raises(ExecutionError, match=r"takes 3 tensor\(s\) \(x, y, out\), got 2"):
        axpy(x, y)
    with pytest.raises(ExecutionError, match="got 4"):
        axpy(x, y, x.clone(), x.clone())


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, None, "tensor"], ids=["list", "float", "none", "str"])
def test_non_tensor_argument(target, no_launch, bad):
    x = randn(target)
    with pytest.raises(ExecutionError, match=rf"y: expected a torch.Tensor, got {type(bad).__name__}"):
        axpy(x, bad, torch.empty_like(x))


CANDIDATES = (torch.float64, torch.uint8, torch.int8, torch.int16, torch.complex64)
UNSUPPORTED = [d for d in CANDIDATES if d not in abi.DTYPE_CODE]


@pytest.mark.parametrize("dtype", UNSUPPORTED, ids=str)
def test_unsupported_dtype(target, no_launch, dtype):
    x = randn(target)
    bad = torch.zeros(target.numel, dtype=dtype, device=target.device)
    with pytest.raises(ExecutionError) as info:
        axpy(x, bad, torch.empty_like(x))
    message = str(info.value)
    assert message.startswith("y: dtype") and str(dtype) in message
    assert all(str(d).removeprefix("torch.") in message for d in abi.DTYPE_CODE)  # lists what is supported
    with pytest.raises(ExecutionError, match="out: dtype"):
        axpy(x, x, bad)


def test_mixed_devices(target, no_launch):
    x = randn(target)
    meta = torch.empty(target.numel, device="meta")
    with pytest.raises(ExecutionError, match=rf"y is on meta but x is on {target.device.type}"):
        axpy(x, meta, torch.empty_like(x))


def test_non_cpu_tensors_under_the_simulator(monkeypatch, no_launch):
    monkeypatch.setattr(executor, "SIMULATOR", True)
    meta = [torch.empty(10, device="meta") for _ in range(3)]
    with pytest.raises(ExecutionError, match="tensors are on meta, but Numba's CUDA simulator is enabled"):
        axpy(*meta)


def test_cpu_tensors_without_the_simulator(monkeypatch, no_launch):
    monkeypatch.setattr(executor, "SIMULATOR", False)
    x = torch.randn(10)
    with pytest.raises(ExecutionError, match="tensors are on cpu; gint runs CUDA tensors") as info:
        axpy(x, x, torch.empty_like(x))
    assert "NUMBA_ENABLE_CUDASIM=1" in str(info.value)


def test_stored_tensor_must_have_the_broadcast_shape(target, no_launch):
    x = randn(target, target.rows, target.cols)
    y = randn(target, target.cols)
    short = torch.empty(target.cols, device=target.device)
    with pytest.raises(ExecutionError, match=r"slot 2 is written but has shape .* not the full shape"):
        axpy(x, y, short)
    with pytest.raises(ExecutionError, match="do not broadcast"):
        axpy(x, randn(target, target.cols + 1), torch.empty_like(x))


def test_stored_tensor_with_a_zero_stride(target, no_launch):
    x = randn(target, target.rows, target.cols)
    expanded = torch.empty(1, target.cols, device=target.device).expand(target.rows, target.cols)
    assert expanded.stride()[0] == 0
    with pytest.raises(ExecutionError, match="overlaps itself"):
        axpy(x, x, expanded)


def test_stored_tensor_overlapping_an_input(target, no_launch):
    storage = randn(target, target.numel + 1)
    x, out = storage[1:], storage[:-1]  # out[i + 1] is x[i]
    with pytest.raises(ExecutionError, match="out is written but overlaps x in memory"):
        axpy(x, randn(target), out)
    with pytest.raises(ExecutionError, match="overlaps"):
        axpy(randn(target), x, out)
    with pytest.raises(ExecutionError, match="overlaps"):  # same start, different shape
        axpy(storage, storage[:1], storage)


def test_identical_view_read_at_an_offset_is_refused(target, no_launch):
    x = randn(target)
    with pytest.raises(ExecutionError, match="overlaps"):
        stencil(x, x)  # out[i] = x[i-1] - x[i+1] would read neighbours other threads write


def test_in_place_update_of_an_identical_view(target):
    x, y = randn(target, target.rows, target.cols), randn(target, target.rows, target.cols)
    expected = x * 2 + y
    axpy(x, y, x)  # out is x: allowed, every element is read before it is written
    torch.testing.assert_close(x, expected)
    t = x.t()  # identical transposed views too
    expected = t * 2 + y.t()
    axpy(t, y.t(), t)
    torch.testing.assert_close(t, expected)


def test_disjoint_views_of_one_storage(target):
    storage = randn(target, 2 * target.numel)
    x, out = storage[: target.numel], storage[target.numel :]
    y = randn(target)
    expected = x * 2 + y
    axpy(x, y, out)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(storage[: target.numel], x)


def test_every_supported_dtype_is_accepted(target):
    x = torch.randn(target.numel, device=target.device)
    for dtype in abi.DTYPE_CODE:
        out = torch.zeros(target.numel, dtype=dtype, device=target.device)
        axpy(x, x.to(dtype), out)
        assert out.dtype == dtype


# --------------------------------------------------------------------- layouts


def _layout(*tensors, stored=frozenset(), keep_row=False):
    return plan(
        [t.shape for t in tensors],
        [t.stride() for t in tensors],
        [t.dtype for t in tensors],
        stored=set(stored),
        keep_row=keep_row,
    )


def _pad(sizes):
    """Domain sizes as the table holds them: padded in front with size-1 dims."""
    return tuple([1] * (abi.MAX_DIMS - len(sizes)) + list(sizes))


def _strides(strides):
    """Element strides as the table holds them: 0 along the padding dims."""
    return tuple([0] * (abi.MAX_DIMS - len(strides)) + list(strides))


def test_contiguous_tensors_collapse_to_one_dimension():
    a, b = torch.empty(2, 3, 4, 5), torch.empty(2, 3, 4, 5)
    layout = _layout(a, b, stored={1})
    assert layout.domain == _pad([120])
    assert layout.strides == (_strides([1]), _strides([1]))
    assert layout.numel == 120
    assert layout.dtypes == (abi.DT_F32, abi.DT_F32)


def test_transposed_input_keeps_two_dimensions():
    a = torch.empty(5, 3).t()  # shape (3, 5), strides (1, 3)
    out = torch.empty(3, 5)
    layout = _layout(a, out, stored={1})
    assert layout.domain == _pad([3, 5])
    assert layout.strides == (_strides([1, 3]), _strides([5, 1]))


def test_broadcast_gives_stride_zero():
    a, row, col = torch.empty(3, 5), torch.empty(5), torch.empty(3, 1)
    layout = _layout(a, row, col)
    assert layout.domain == _pad([3, 5])
    assert layout.strides == (_strides([5, 1]), _strides([0, 1]), _strides([1, 0]))
    scalar = _layout(torch.empty(4, 6), torch.empty(()))
    assert scalar.domain == _pad([24]) and scalar.strides[1] == _strides([0])


def test_size_one_dimensions_are_dropped():
    a = torch.empty(3, 1, 4, 1)
    b = torch.empty(4, 3).t().reshape(3, 1, 4, 1)  # keeps b from merging with a
    layout = _layout(a, b)
    assert layout.domain == _pad([3, 4])
    assert layout.strides == (_strides([4, 1]), _strides([1, 3]))
    assert coalesce([3, 1, 4], [[4, 4, 1]], keep_row=False) == ([12], [[1]])
    assert coalesce([1, 1], [[7, 9]], keep_row=False) == ([], [[]])


def test_keep_row_keeps_the_last_dimension():
    a, b = torch.empty(3, 4, 5), torch.empty(3, 4, 5)
    assert _layout(a, b).domain == _pad([60])
    kept = _layout(a, b, keep_row=True)
    assert kept.domain == _pad([12, 5])  # the outer dims still merge
    assert kept.strides == (_strides([5, 1]), _strides([5, 1]))
    one = _layout(torch.empty(6, 1), keep_row=True)  # even a row of length 1
    assert one.domain == _pad([6, 1])
    assert coalesce([3, 5], [[5, 1]], keep_row=True) == ([3, 5], [[5, 1]])


def test_more_dimensions_than_the_kernel_iterates():
    n = abi.MAX_DIMS + 2
    a = torch.empty(*range(2, 2 + n)).permute(*reversed(range(n)))  # nothing merges: sizes 7, 6, ..., 2
    layout = _layout(a, torch.empty(a.shape))
    # the row and the largest other dims stay in the table; the host iterates the smallest
    assert layout.domain == (7, 6, 5, 2) and layout.host_domain == (4, 3)
    assert len(layout.host_offsets()) == 12 and layout.numel == a.numel()
    contiguous = torch.empty(*range(2, 2 + n))  # the same rank merges fine
    merged = _layout(contiguous, torch.empty(contiguous.shape))
    assert merged.domain == _pad([contiguous.numel()]) and merged.host_domain == ()


def test_zero_dim_and_empty_layouts():
    scalar = _layout(torch.empty(()), torch.empty(()), stored={1})
    assert scalar.domain == _pad([1]) and scalar.numel == 1
    assert _layout(torch.empty(()), keep_row=True).domain == _pad([1])
    empty = _layout(torch.empty(0, 5), torch.empty(0, 5), stored={1})
    assert empty.numel == 0 and empty.tiles(256) == 0


def test_layout_errors():
    with pytest.raises(LayoutError, match="do not broadcast"):
        _layout(torch.empty(3), torch.empty(4))
    with pytest.raises(LayoutError, match="not the full shape"):
        _layout(torch.empty(3, 4), torch.empty(4), stored={1})
    with pytest.raises(LayoutError, match="zero stride"):
        _layout(torch.empty(3, 4), torch.empty(1, 4).expand(3, 4), stored={1})


def test_table_words():
    a, b = torch.empty(5, 3).t(), torch.empty(3, 5, dtype=torch.float16)
    layout = _layout(a, b)
    words = layout.words()
    assert len(words) == abi.TABLE_WORDS
    assert tuple(words[: abi.HEADER]) == layout.domain
    assert words[abi.slot_word(0, 0)] == abi.DT_F32 and words[abi.slot_word(1, 0)] == abi.DT_F16
    assert tuple(words[abi.slot_word(0, 1) : abi.slot_word(0, 1) + abi.MAX_DIMS]) == layout.strides[0]
    assert tuple(words[abi.slot_word(1, 1) : abi.slot_word(1, 1) + abi.MAX_DIMS]) == layout.strides[1]
    assert all(w == 0 for w in words[abi.slot_word(2, 0) :])  # unused slots


@pytest.mark.parametrize("shape,keep_row", list(itertools.product([(7, 3, 1, 2), (5, 2, 3, 2, 2)], [False, True])))
def test_coalesce_preserves_addresses(shape, keep_row):
    """Coalesced sizes and strides visit exactly the same element offsets in the same order."""
    tensors = [torch.empty(shape), torch.empty(tuple(reversed(shape))).permute(*reversed(range(len(shape))))]
    domain = list(shape)
    strides = [list(t.stride()) for t in tensors]
    sizes, cols = coalesce(domain, strides, keep_row)

    def offsets(sizes, strides):
        return [sum(i * s for i, s in zip(index, strides)) for index in itertools.product(*map(range, sizes))]

    for before, after in zip(strides, cols):
        assert offsets(sizes, after) == offsets(domain, before)
    if keep_row:
        assert sizes[-1] == shape[-1]


# ------------------------------------------------------------ runs through layouts


def test_five_dimensional_inputs_run(target):
    x = torch.randn(2, 3, 2, 3, target.cols, device=target.device)
    y = torch.randn(target.cols, device=target.device)  # broadcast over the four outer dims
    out = torch.empty_like(x)
    axpy(x, y, out)
    torch.testing.assert_close(out, x * 2 + y)
    out = torch.empty_like(x)
    stencil(x, out)  # keep_row: the outer four dims still merge into one
    padded = torch.nn.functional.pad(x, (1, 1))
    torch.testing.assert_close(out, padded[..., :-2] - padded[..., 2:])


@pytest.mark.parametrize("extra", [1, 3])
def test_more_dimensions_than_the_table_run_on_the_host(target, extra):
    n = abi.MAX_DIMS + extra
    sizes = [2] * (n - 1) + [3] if target.name == "sim" else list(range(2, 2 + n))  # the simulator: 2**extra launches
    x = torch.randn(*sizes, device=target.device).permute(*reversed(range(n)))  # nothing merges
    y = torch.randn(x.shape, device=target.device)
    out = torch.empty(x.shape, device=target.device)
    axpy(x, y, out)
    torch.testing.assert_close(out, 2 * x + y)


# ---------------------------------------------------------------------- counters


def _fresh_program(tag: float):
    """A program no other test builds (a distinct constant)."""
    return Assembler("x", "out").load(0).const(tag).mul().store(1).halt().program()


def test_launch_counter_counts_runs(target):
    program = _fresh_program(1.0 + 2.0**-20)
    x = torch.randn(target.numel, device=target.device)
    out = torch.empty_like(x)
    before = counts()
    executor.run(program, [x, out])
    executor.run(program, [x, out])
    executor.run(program, [x[: target.numel // 2], out[: target.numel // 2]])  # another layout, same program
    after = counts()
    assert after["launches"] - before["launches"] == 3
    assert after["programs_built"] - before["programs_built"] == 1
    torch.testing.assert_close(out, x * (1.0 + 2.0**-20))


def test_programs_built_once_per_distinct_program(target):
    x = torch.randn(target.numel, device=target.device)
    out = torch.empty_like(x)
    before = counts()
    first = _fresh_program(3.0 + 2.0**-19)
    same = _fresh_program(3.0 + 2.0**-19)  # equal, not identical
    other = _fresh_program(5.0 + 2.0**-19)
    assert first == same and first is not same
    for program in (first, same, other, first):
        executor.run(program, [x, out])
    after = counts()
    assert after["programs_built"] - before["programs_built"] == 2
    assert after["launches"] - before["launches"] == 4
    assert executor.prepare(first) is executor.prepare(same)


def test_empty_tensors_do_not_launch(target):
    e = torch.empty(0, 5, device=target.device)
    before = counts()
    axpy(e, e, torch.empty(0, 5, device=target.device))
    assert counts()["launches"] == before["launches"]


def test_failed_validation_does_not_launch(target):
    x = randn(target)
    before = counts()
    with pytest.raises(ExecutionError):
        axpy(x, x.double(), torch.empty_like(x))
    assert counts()["launches"] == before["launches"]


# ------------------------------------------- bugs found by these tests, fixed


def test_loaded_alias_of_a_stored_slot_reads_the_old_value(target):
    @bytecode
    def update_then_read(x, y, z, out):
        total = x.load()
        for k in range(7):
            total = total + z.load(k)
        x.store(total)
        out.store(y.load() * 2.0)  # y is bound to the same tensor as x below

    t, z = randn(target), randn(target)
    out = torch.empty_like(t)
    old = t.clone()
    with pytest.raises(ExecutionError, match="overlaps"):
        update_then_read(t, t, z, out)  # y is read after x is written: refused
    torch.testing.assert_close(t, old)  # before anything ran


def test_program_without_slots(target):
    program = Assembler().halt().program()
    with pytest.raises(ExecutionError, match="no tensor slots"):
        executor.run(program, [])
