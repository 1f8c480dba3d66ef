"""Row programs (reductions): scheduling, layouts, the kernel through the frontend, and
torch.compile, against eager PyTorch on random data."""

import pytest
import torch
import torch.nn.functional as F

import gint
from gint import abi, isa
from gint.conductor import register_backend
from gint.conductor.report import Report, recording
from gint.host import expr, rowcode, stackcode
from gint.host.frontend import bytecode, exp, row_length, row_max, row_min, row_prod, row_sum, rsqrt
from gint.host.layout import LayoutError, plan
from gint.host.program import Program, encode
from gint.host.verifier import verify

register_backend()
OP = {ins.opcode: ins.name for ins in isa.TABLE}


def names(code) -> list[str]:
    return [OP[op] for op, _ in code]


def shape_for(target) -> tuple[int, int]:
    """Rows longer than one chunk (256 elements per warp) with a partial last chunk."""
    return (target.rows, target.cols) if target.name == "gpu" else (3, 300)


def compiled(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint", **kwargs)


def run_with_report(fn, *args):
    """``fn(*args)`` compiled afresh by gint, with the report of what ran where (one run)."""
    torch._dynamo.reset()
    with recording(Report()) as report:
        out = torch.compile(fn, backend="gint")(*args)
    return out, report


# ------------------------------------------------------------------ scheduling


def _layer_norm_stores():
    x = expr.load(0)
    mean = expr.apply("DIV", expr.reduce("sum", x), expr.rowlen())
    deviation = expr.apply("SUB", x, mean)
    var = expr.apply("DIV", expr.reduce("sum", expr.apply("MUL", deviation, deviation)), expr.rowlen())
    rstd = expr.math("rsqrt", expr.apply("ADD", var, expr.const(1e-5)))
    return [expr.Store(1, expr.apply("MUL", deviation, rstd)), expr.Store(2, rstd, per_row=True)]


def test_reductions_are_grouped_by_level():
    x = expr.load(0)
    top = expr.reduce("max", x)
    total = expr.reduce("sum", expr.math("exp", expr.apply("SUB", x, top)))
    also_level_0 = expr.reduce("min", x)
    levels = rowcode.reductions_by_level([expr.apply("DIV", total, also_level_0)])
    assert [set(level) for level in levels] == [{top, also_level_0}, {total}]


def test_layer_norm_schedule_hoists_row_constants_out_of_the_last_loop():
    code = rowcode.schedule_rows(_layer_norm_stores())
    verify(Program(tuple(code), ("x", "out", "rstd")))
    ops = names(code)
    assert ops.count("NEXTCHUNK") == 3 and ops.count("REDUCE") == 2 and ops[-1] == "HALT"
    last_loop = ops[ops.index("NEXTCHUNK", ops.index("NEXTCHUNK") + 1) + 1 :]
    # mean and rsqrt(var + eps) are computed once per row, not once per chunk
    final = last_loop[last_loop.index("LOAD") :]
    assert "ROWLEN" not in final and "MATH" not in final, final
    assert "STORE" in last_loop[: last_loop.index("LOAD")]  # the per-row output, between loops


def test_sum_of_loads_needs_no_mask_but_max_does():
    x = expr.load(0)
    sum_ops = names(rowcode.schedule_rows([expr.Store(1, expr.reduce("sum", expr.apply("MUL", x, x)))]))
    max_ops = names(rowcode.schedule_rows([expr.Store(1, expr.reduce("max", x))]))
    assert "ROWMASK" not in sum_ops and "ROWMASK" in max_ops


def test_row_programs_are_flagged_in_the_header():
    row = Program(tuple(rowcode.schedule_any([expr.Store(1, expr.reduce("sum", expr.load(0)))])), ("x", "s"))
    tiles = Program(tuple(rowcode.schedule_any([expr.Store(1, expr.load(0))])), ("x", "y"))
    assert row.is_row_program and not tiles.is_row_program
    assert encode(row, verify(row))[abi.CODE_ROW_PROGRAM] == 1
    assert encode(tiles, verify(tiles))[abi.CODE_ROW_PROGRAM] == 0


def test_row_length_alone_makes_a_looping_row_program():
    code = rowcode.schedule_any([expr.Store(1, expr.apply("MUL", expr.load(0), expr.rowlen()))])
    assert "NEXTCHUNK" in names(code)


def test_too_many_reductions_for_the_stack_raise():
    loads = [expr.load(s) for s in range(isa.MAX_DEPTH + 1)]
    total = loads[0]
    for k, load in enumerate(loads[1:]):
        total = expr.apply("ADD", total, expr.reduce("sum", expr.apply("MUL", load, expr.const(k + 1.0))))
    with pytest.raises(stackcode.StackDepthError):
        rowcode.schedule_rows([expr.Store(0, total)])


# ------------------------------------------------------------------ layouts


def test_row_layout_puts_reduced_dims_innermost():
    x, s = (2, 3, 4), (2, 1, 4)  # reduce dim 1 of a contiguous [2, 3, 4]
    layout = plan([x, s], [(12, 4, 1), (4, 4, 1)], [torch.float32] * 2, stored={1}, reduce_dims=[1])
    assert layout.domain == (1, 2, 4, 3)  # x's kept dims (strides 12, 1) do not merge
    assert layout.strides == ((0, 12, 1, 4), (0, 4, 1, 0))


def test_row_layout_rejects_reduced_dims_that_do_not_merge():
    x = torch.randn(4, 5, 6).transpose(1, 2)  # reduce its last two dims: strides 1 and 6 do not chain
    with pytest.raises(LayoutError, match="not one contiguous run"):
        plan([x.shape], [x.stride()], [torch.float32], reduce_dims=[1, 2])


def test_per_row_outputs_need_a_row_program():
    with pytest.raises(LayoutError, match="not the full shape"):
        plan([(3, 5), (3, 1)], [(5, 1), (1, 1)], [torch.float32] * 2, stored={1})


# ------------------------------------------------------------------ the kernel


@bytecode
def softmax_rows(x, out):
    e = exp(x.load() - row_max(x.load()))
    out.store(e / row_sum(e))


@bytecode
def layer_norm_rows(x, w, out, mean_out, rstd_out):
    xv = x.load()
    mean = row_sum(xv) / row_length()
    deviation = xv - mean
    rstd = rsqrt(row_sum(deviation * deviation) / row_length() + 1e-5)
    out.store(deviation * rstd * w.load())
    mean_out.store(mean)
    rstd_out.store(rstd)


@bytecode
def extremes(x, low, product):
    low.store(row_min(x.load()))
    product.store(row_prod(x.load()))


@pytest.mark.parametrize("cols", ["target", 5])
def test_softmax_bytecode(target, cols):
    rows, width = shape_for(target)
    x = torch.randn(rows, width if cols == "target" else cols, device=target.device) * 4
    out = torch.empty_like(x)
    softmax_rows(x, out)
    torch.testing.assert_close(out, torch.softmax(x, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_norm_bytecode_with_per_row_outputs(target, dtype):
    rows, cols = shape_for(target)
    x = torch.randn(rows, cols, device=target.device).to(dtype)
    w = torch.randn(cols, device=target.device).to(dtype)
    out = torch.empty_like(x)
    mean, rstd = (torch.empty(rows, 1, device=target.device) for _ in range(2))
    layer_norm_rows(x, w, out, mean, rstd)
    want, want_mean, want_rstd = torch.ops.aten.native_layer_norm(x.float(), [cols], w.float(), None, 1e-5)
    torch.testing.assert_close(out, want.to(dtype))
    torch.testing.assert_close(mean, want_mean)
    torch.testing.assert_close(rstd, want_rstd)


def test_min_and_product_bytecode(target):
    rows, cols = shape_for(target)
    x = 1.0 + 0.01 * torch.randn(rows, cols, device=target.device)
    x[0, -1] = float("nan")  # in the last, partial chunk
    low, product = torch.empty(rows, 1, device=target.device), torch.empty(rows, 1, device=target.device)
    extremes(x, low, product)
    torch.testing.assert_close(low[:, 0], x.amin(-1), equal_nan=True)
    torch.testing.assert_close(product[:, 0], x.prod(-1), equal_nan=True, rtol=1e-4, atol=0)


# ------------------------------------------------------------------ torch.compile


NORMS = {
    "softmax": lambda x, w, b: torch.softmax(x, -1),
    "log_softmax": lambda x, w, b: torch.log_softmax(x, -1),
    "layer_norm": lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b),
    "rms_norm": lambda x, w, b: F.rms_norm(x, x.shape[-1:], w, 1e-6),
}


@pytest.mark.parametrize("name", list(NORMS))
def test_norms_forward_are_one_subgraph(target, name):
    rows, cols = shape_for(target)
    x = torch.randn(rows, cols, device=target.device) * 3
    w, b = torch.randn(cols, device=target.device), torch.randn(cols, device=target.device)
    fn = NORMS[name]
    dtypes = [torch.float32] if target.name == "sim" else [torch.float32, torch.bfloat16, torch.float16]
    for dtype in dtypes:
        args = (x.to(dtype), w.to(dtype), b.to(dtype))
        got, report = run_with_report(fn, *args)
        torch.testing.assert_close(got, fn(*args))
        assert len(report.subgraphs) == 1 and report.coverage == 1.0, str(report)
        assert report.subgraphs[0].callable.executable.row_program


def test_reductions_over_dims_with_and_without_keepdim(target):
    def f(x):
        return (
            x.sum(-1),
            x.amax(0),
            x.amin((0, 1), keepdim=True),
            x.var(-1, correction=0),
        ) + (  # more of the same kinds on the GPU (the simulator's CI time; OpInfo covers each op)
            () if target.name == "sim" else (x.mean(-1, keepdim=True), x.std(1), (1 + x / 8).prod(-1), x.sum())
        )

    shape = (2, 3, 5) if target.name == "sim" else (64, 33, 1025)
    x = torch.randn(shape, device=target.device)
    got, report = run_with_report(f, x)
    for g, want in zip(got, f(x)):
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-4)
    assert report.subgraphs, str(report)
    # on the GPU's size, x.sum() is one row of 2M elements: one warp would walk it, so it stays eager
    assert all("too few rows" in f.reason for f in report.fallback), str(report)
    assert report.coverage == 1.0 or target.name == "gpu", str(report)


def test_pointwise_before_and_after_a_reduction_share_its_subgraph(target):
    def f(x, y):
        centered = x * y - (x * y).mean(-1, keepdim=True)
        return torch.tanh(centered / (centered.abs().amax(-1, keepdim=True) + 1))

    rows, cols = shape_for(target)
    x, y = torch.randn(rows, cols, device=target.device), torch.randn(1, cols, device=target.device)
    got, report = run_with_report(f, x, y)
    torch.testing.assert_close(got, f(x, y))
    assert len(report.subgraphs) == 1 and report.coverage == 1.0, str(report)


def test_layer_norm_training_matches(target):
    rows, cols = shape_for(target) if target.name == "gpu" else (2, 8)
    x = torch.randn(rows, cols, device=target.device, requires_grad=True)
    w = torch.randn(cols, device=target.device, requires_grad=True)
    b = torch.randn(cols, device=target.device, requires_grad=True)
    grad = torch.randn(rows, cols, device=target.device)

    def f(x, w, b):
        return torch.softmax(F.layer_norm(x, (cols,), w, b), -1)

    compiled(f)(x, w, b).backward(grad)
    got = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    f(x, w, b).backward(grad)
    for g, t in zip(got, (x, w, b)):
        torch.testing.assert_close(g, t.grad, rtol=1e-4, atol=1e-4)


def test_shapes_a_row_program_cannot_mix_stay_correct(target):
    def f(x, y):
        return x.sum(-1) + y  # y: [rows], aligned with the reduced result, not with x's rows

    x, y = torch.randn(3, 7, device=target.device), torch.randn(3, device=target.device)
    got, report = run_with_report(f, x, y)
    torch.testing.assert_close(got, f(x, y))
    assert report.coverage == 1.0 and len(report.subgraphs) == 2  # the add runs as its own pointwise program


def test_few_long_rows_stay_eager_with_a_reason():
    from gint.conductor.reductions import LONG_ROW

    x = torch.randn(2, LONG_ROW)  # never launched: the partitioner keeps it eager
    report = gint.explain(lambda x: x.sum(-1), x)
    assert report.coverage == 0.0
    assert "too few rows" in report.fallback[0].reason


def test_new_row_lengths_need_no_new_program(target):
    def f(x):
        return torch.softmax(x * 2, -1)

    fn = compiled(f, dynamic=True)
    lengths = [300, 41, 513] if target.name == "sim" else [4099, 77, 8192]
    first = torch.randn(3, lengths[0], device=target.device)
    torch.testing.assert_close(fn(first), f(first))
    before = gint.counters()
    for n in lengths[1:]:
        x = torch.randn(3, n, device=target.device)
        torch.testing.assert_close(fn(x), f(x))
    after = gint.counters()
    assert after["programs_built"] == before["programs_built"]
    assert after["graphs_compiled"] == before["graphs_compiled"]


def test_a_cast_right_before_a_store_of_that_dtype_is_not_repeated(target):
    def f(x, w):
        return F.rms_norm(x, x.shape[-1:], w, 1e-6)  # bf16 in: upcast, norm, cast back down

    rows, cols = shape_for(target)
    x = torch.randn(rows, cols, device=target.device).bfloat16()
    w = torch.randn(cols, device=target.device).bfloat16()
    got, report = run_with_report(f, x, w)
    torch.testing.assert_close(got, f(x, w))
    assert len(report.subgraphs) == 1
    listing = report.subgraphs[0].disassembly
    assert "store" in listing and "tobf16" not in listing and "to_bf16" not in listing


def _mnemonics(listing: str) -> list[str]:
    return [line.split()[1] for line in listing.splitlines() if line.strip()[:1].isdigit()]


def test_a_16_bit_value_is_rounded_once(target):
    def f(x, r, w, b):  # BERT's residual add and layer norm: the bf16 sum is upcast, so rounded
        return F.layer_norm(x + r, x.shape[-1:], w, b, 1e-12)

    rows, cols = shape_for(target)
    x, r = (torch.randn(rows, cols, device=target.device).bfloat16() for _ in range(2))
    w, b = (torch.randn(cols, device=target.device).bfloat16() for _ in range(2))
    got, report = run_with_report(f, x, r, w, b)
    torch.testing.assert_close(got, f(x, r, w, b))
    assert len(report.subgraphs) == 1
    code = _mnemonics(report.subgraphs[0].disassembly)
    pairs = list(zip(code, code[1:]))
    assert code.count("tobf16") == 3  # the sum, once in each of the three walks over the row
    assert ("tobf16", "tobf16") not in pairs and ("tobf16", "store") not in pairs


def test_reduced_dims_that_cannot_be_one_row_stay_eager_with_a_reason():
    x = torch.randn(2, 4, 3).transpose(1, 2)  # reduce dims 1 and 2: strides 1 and 3 do not chain
    report = gint.explain(lambda x: x.sum((1, 2)), x)
    assert report.coverage == 0.0 and "as one run" in report.fallback[0].reason
    torch.testing.assert_close(torch.compile(lambda x: x.sum((1, 2)), backend="gint")(x), x.sum((1, 2)))


@bytecode
def sum_of_quotients(x, y, out):
    out.store(row_sum(x.load() * (1.0 / y.load())))  # past the row's end: 0 * (1 / 0) would be nan


def test_a_product_that_is_not_zero_past_the_row_end_is_masked(target):
    rows, cols = shape_for(target)
    x, y = torch.randn(rows, cols, device=target.device), torch.rand(rows, cols, device=target.device) + 0.5
    out = torch.empty(rows, 1, device=target.device)
    sum_of_quotients(x, y, out)
    assert "rowmask" in sum_of_quotients.listing()
    torch.testing.assert_close(out[:, 0], (x / y).sum(-1), rtol=1e-4, atol=1e-4)


def _ops(*names_operands):
    return [(isa.BY_NAME[name].opcode, operand) for name, operand in names_operands]


def test_a_copy_worked_on_and_poked_back_becomes_work_in_place():
    code = _ops(
        ("CONST", 0), ("LOAD", 0), ("ADD", 0), ("NEXTCHUNK", 1),
        ("PICK", 0), ("ROWLEN", 0), ("DIV", 0), ("POKE", 0),  # the mean, over the sum
        ("LOAD", 0), ("PICK", 1), ("SUB", 0), ("STORE", isa.encode_slot(1)), ("NEXTCHUNK", 8), ("HALT", 0),
    )  # fmt: skip
    assert rowcode.in_place(code) == _ops(
        ("CONST", 0), ("LOAD", 0), ("ADD", 0), ("NEXTCHUNK", 1),
        ("ROWLEN", 0), ("DIV", 0),
        ("LOAD", 0), ("PICK", 1), ("SUB", 0), ("STORE", isa.encode_slot(1)), ("NEXTCHUNK", 6), ("HALT", 0),
    )  # fmt: skip


def test_a_copy_whose_original_is_read_or_written_meanwhile_stays():
    reads_original = _ops(("CONST", 0), ("PICK", 0), ("PICK", 1), ("DIV", 0), ("POKE", 0), ("HALT", 0))
    writes_original = _ops(("CONST", 0), ("PICK", 0), ("CONST", 0), ("POKE", 1), ("POKE", 0), ("HALT", 0))
    across_a_loop = _ops(("CONST", 0), ("PICK", 0), ("LOAD", 0), ("ADD", 0), ("NEXTCHUNK", 2), ("POKE", 0), ("HALT", 0))
    for code in (reads_original, writes_original, across_a_loop):
        assert rowcode.in_place(code) == code


def test_norms_turn_sums_into_means_in_place(target):
    rows, cols = shape_for(target)
    x, w = torch.randn(rows, cols, device=target.device), torch.randn(cols, device=target.device)
    for f in (
        lambda x, w: F.layer_norm(x, x.shape[-1:], w, None, 1e-5),
        lambda x, w: F.rms_norm(x, x.shape[-1:], w, 1e-6),
    ):
        got, report = run_with_report(f, x, w)
        torch.testing.assert_close(got, f(x, w))
        code = _mnemonics(report.subgraphs[0].disassembly)
        assert ("unpark", "rowlen") in list(zip(code, code[1:])), report.subgraphs[0].disassembly
