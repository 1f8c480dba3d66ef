"""Regression tests for results gint used to get wrong (each failed on main 42da375),
against eager PyTorch on random data. Rows are longer than one chunk of a row program
(256 elements) and the simulator runs two warps per block."""

import math

import pytest
import torch
import torch.nn.functional as F

import gint
from gint.conductor import register_backend
from gint.host import executor
from gint.host.frontend import Assembler, bytecode, row_max, row_sum

register_backend()


def compiled(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint", **kwargs)


def long_rows(target) -> tuple[int, int]:
    """Rows longer than one 256-element chunk, with a partial last chunk, more rows than warps."""
    return (target.rows, target.cols) if target.name == "gpu" else (5, 300)


def bits_equal(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal values, dtypes and signs of zero (nan anywhere equals nan)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    if got.dtype.is_floating_point:
        finite = ~torch.isnan(want)
        assert torch.equal(torch.signbit(got[finite]), torch.signbit(want[finite])), "signs of zero differ"


# ------------------------------------------------- 1. a per-row value over a whole row


def test_a_row_result_broadcast_into_a_full_output_fills_every_element(target):
    x = torch.randn(*long_rows(target), device=target.device)
    zeros_like = torch.zeros(x.shape, device=target.device)

    def f(x, z):
        return x.amax(-1, keepdim=True) + z, torch.ones_like(x) * x.sum(-1, keepdim=True)

    got = compiled(f)(x, zeros_like)
    want = f(x, zeros_like)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-4)  # a sum of 4,099: another order
    assert gint.explain(f, x, zeros_like).coverage == 1.0


def test_a_bytecode_row_result_stored_to_a_full_tensor_or_a_per_row_tensor(target):
    @bytecode
    def spread(x, out):
        out.store(row_max(x.load()))

    x = torch.randn(*long_rows(target), device=target.device)
    full = torch.full(x.shape, -7.0, device=target.device)
    per_row = torch.full((x.shape[0], 1), -7.0, device=target.device)
    spread(x, full)
    spread(x, per_row)
    torch.testing.assert_close(full, x.amax(-1, keepdim=True).expand_as(x), rtol=0, atol=0)
    torch.testing.assert_close(per_row, x.amax(-1, keepdim=True), rtol=0, atol=0)


def test_a_store_outside_the_chunk_loops_needs_a_per_row_tensor(target):
    """Code between loops runs on a row's first chunk only: the launch refuses a slot
    that moves along the row there, instead of writing its first 256 elements."""
    asm = Assembler("x", "out").const(0.0).load(0).add().nextchunk(1).park().reduce("sum").unpark().store(1).halt()
    program = asm.program()
    assert program.once_per_row_slots == {1}
    x = torch.randn(*long_rows(target), device=target.device)
    with pytest.raises(executor.ExecutionError, match="once per row"):
        executor.run(program, [x, torch.empty_like(x)])
    per_row = torch.empty(x.shape[0], 1, device=target.device)
    executor.run(program, [x, per_row])
    torch.testing.assert_close(per_row, x.sum(-1, keepdim=True), rtol=1e-5, atol=1e-4)


def test_a_per_row_slot_that_is_read_and_written_is_refused(target):
    program = Assembler("x", "io").load(1).load(0).add().store(1).nextchunk(0).halt().program()
    x = torch.randn(*long_rows(target), device=target.device)
    io = torch.randn(x.shape[0], 1, device=target.device)
    with pytest.raises(executor.ExecutionError, match="race"):
        executor.run(program, [x, io])
    full = torch.randn_like(x)
    want = full + x
    executor.run(program, [x, full])  # a slot that moves along the row: each lane its own elements
    torch.testing.assert_close(full, want, rtol=0, atol=0)


# ------------------------------------------------------------- 2. integers stay exact


def test_integer_comparisons_are_exact(target):
    big = torch.tensor([2**24 + 1, 2**40 + 1, -(2**53) - 1, 7, 2**62], device=target.device)
    other = torch.tensor([2**24, 2**40, -(2**53), 7, 2**62 - 1], device=target.device)

    def f(a, b):
        return a == b, a != b, a < b, a >= b, a > 2**24, (a == b) | (a <= b)

    got = compiled(f)(big, other)
    for g, w in zip(got, f(big, other)):
        assert torch.equal(g, w)
    small = torch.randint(-100, 100, (target.numel,), device=target.device, dtype=torch.int32)
    report = gint.explain(lambda a: (a.float() * 0.5 + 1, a == 3), small)
    reasons = [f.reason for f in report.fallback]
    assert any("exact for integers only below 2**24" in r for r in reasons), reasons


def test_integer_inputs_of_float_operators_convert_as_eager(target):
    ints = torch.randint(-(2**40), 2**40, (target.numel,), device=target.device)
    floats = torch.randn(target.numel, device=target.device)

    def f(i, x):
        return i * x, i < x, torch.logical_and(i, x > 0), i.float() / 3, torch.isnan(i.float())

    got = compiled(f)(ints, floats)
    for g, w in zip(got, f(ints, floats)):
        bits_equal(g, w)
    assert gint.explain(f, ints, floats).coverage == 1.0


# ----------------------------------------------------- 3. 16-bit operands as eager holds them


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_16_bit_operands_are_rounded_as_eager_rounds_them(target, dtype):
    x = (torch.randn(target.numel, device=target.device) * 4).to(dtype)
    x[:3] = torch.tensor([0.1, 0.2, 3.3]).to(dtype)
    ints = torch.randint(-5000, 5000, (target.numel,), device=target.device, dtype=torch.int32)
    ints[:2] = torch.tensor([2049, 4097])
    scale = torch.tensor(0.1, device=target.device)  # a 0-d float32 tensor: rounded to the 16-bit dtype

    def f(x, i, s):
        return (x == 0.1, x < 0.2, x + 0.1, x - 1 / 3, 0.7 - x, x * 0.1, x / 3.3, torch.clamp(x, 0.1, 0.7),
                torch.where(x > 0, x, 0.3), x + i, x * i, x + s, x < s)  # fmt: skip

    got = compiled(f)(x, ints, scale)
    want = f(x, ints, scale)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, k
        assert torch.equal(g, w), f"output {k}: {(g != w).sum()} of {g.numel()} differ"
    # int32 2049 + float16 1.0 is 2048 + 1 in eager: 2048 after rounding
    h = torch.ones(2, device=target.device, dtype=torch.float16)
    assert compiled(lambda i, h: i + h)(ints[:2], h).tolist() == (ints[:2] + h).tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_a_16_bit_value_computed_in_the_subgraph_is_rounded_where_a_reader_jumps(target, dtype):
    """Comparisons, floor, truth tests and conversions to another dtype read a computed
    16-bit value as eager holds it (rounded); sums and products read it in float32."""
    x = (torch.randn(target.numel, device=target.device) * 3).to(dtype)
    y = (torch.randn(target.numel, device=target.device) * 3).to(dtype)

    def f(x, y):
        t = x * 1.7 + y
        return t > y * 0.3, torch.floor(t * 2.3), (t * 0.01).float(), (x * y).bool(), t.sign()

    got = compiled(f)(x, y)
    for k, (g, w) in enumerate(zip(got, f(x, y))):
        assert torch.equal(g, w), f"output {k}: {(g != w).sum()} of {g.numel()} differ"


def test_division_by_a_python_number_is_bitwise_eager(target):
    """Eager's CUDA kernels divide by a CPU scalar as ``x * (1 / b)`` (an ulp from the
    quotient in a third of the values); its CPU kernels divide. gint does as the device does."""
    x = torch.randn(target.numel, device=target.device) * 100
    x[:4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")])
    h = x.half()

    def f(x, h):
        return (x / 3, x / 0.1, x / -7.5, x / 0.0, torch.div(x, 3, rounding_mode="trunc"),
                torch.div(x, 0.3, rounding_mode="floor"), h / 3.3, torch.div(h, 0.3, rounding_mode="trunc"),
                torch.div(h, 0.3, rounding_mode="floor"), h // -2.7)  # fmt: skip

    got = compiled(f)(x, h)
    for k, (g, w) in enumerate(zip(got, f(x, h))):
        assert torch.equal(g.isnan(), w.isnan()), k
        assert torch.equal(g.nan_to_num(), w.nan_to_num()), f"output {k}: {(g != w).sum()} of {g.numel()} differ"


@pytest.mark.parametrize("device, divides", [("cuda", False), ("cpu", True)])
def test_division_by_a_number_lowers_as_the_device_divides(device, divides):
    """Without a GPU: the lowering of ``x / 3`` for CUDA tensors (fake ones) multiplies
    by float32(1 / 3), for CPU tensors it divides by 3."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    from gint.conductor.lowering import lower_node
    from gint.host import expr

    with FakeTensorMode(allow_non_fake_inputs=True):
        traced = make_fx(lambda x: torch.ops.aten.div.Tensor(x, 3))(torch.empty(8, device=device))
    placeholder, division, _ = traced.graph.nodes
    lowered = lower_node(division, {placeholder: expr.load(0)})
    want = expr.apply("DIV", expr.load(0), expr.const(3.0)) if divides else None
    if not divides:
        third = (torch.tensor(1.0) / torch.tensor(3.0)).item()
        want = expr.apply("MUL", expr.load(0), expr.const(third))
    assert lowered == want


# -------------------------------------------------- 4. negative store offsets stay in the row


@pytest.mark.parametrize("offset", [-100, -1, -3, 2, 300])
def test_a_store_offset_writes_only_elements_of_the_row(target, offset):
    @bytecode
    def shifted(x, out):
        out.store(x.load() + 1.0, offset=offset)

    for shape in [(70,), (3, 70), long_rows(target)]:
        x = torch.randn(shape, device=target.device)
        out = torch.full(shape, -7.0, device=target.device)
        shifted(x, out)
        want = torch.full(shape, -7.0, device=target.device)
        n = shape[-1]
        if abs(offset) < n:
            if offset >= 0:
                want[..., offset:] = x[..., : n - offset] + 1
            else:
                want[..., : n + offset] = x[..., -offset:] + 1
        torch.testing.assert_close(out, want, rtol=0, atol=0, msg=lambda m, s=shape: f"shape {s}: {m}")


# ------------------------------------------------------------ 5. autograd sees the writes


@bytecode
def doubled(x, out):
    out.store(x.load() * 2.0)


def test_run_bumps_the_version_of_what_it_writes(target):
    a = torch.randn(target.numel, device=target.device, requires_grad=True)
    b = a * 1.0
    c = b.sin()  # saves b for backward
    before = b._version
    doubled(torch.randn(target.numel, device=target.device), b.detach())  # shares b's version counter
    assert b._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()


def test_run_refuses_to_write_tensors_that_require_grad(target):
    x = torch.randn(target.numel, device=target.device)
    leaf = torch.randn(target.numel, device=target.device, requires_grad=True)
    with pytest.raises(executor.ExecutionError, match="leaf tensor that requires grad"):
        doubled(x, leaf)
    with pytest.raises(executor.ExecutionError, match="requires grad"):
        doubled(x, leaf * 1.0)
    with torch.no_grad():
        doubled(x, leaf)  # as eager allows in-place writes under no_grad
    torch.testing.assert_close(leaf.detach(), x * 2)


# ---------------------------------------------------- 6. gradients through attention


@pytest.mark.parametrize("mask", ["bool", "float", "causal", "none"])
def test_attention_gradients_match_eager(target, mask):
    torch.manual_seed(1)
    b, h, s, d = (2, 2, 6, 8) if target.name == "sim" else (4, 8, 128, 64)
    q, k, v = (torch.randn(b, h, s, d, device=target.device, requires_grad=True) for _ in range(3))
    masks = {
        "bool": torch.rand(s, s, device=target.device) > 0.3,
        "float": torch.randn(s, s, device=target.device),
        "causal": None,
        "none": None,
    }
    attn_mask = masks[mask]
    if mask == "bool":
        attn_mask.fill_diagonal_(True)

    def f(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=mask == "causal")
        return (out * out).sum()

    loss = compiled(f)(q, k, v)
    grads = torch.autograd.grad(loss, (q, k, v))
    want_loss = f(q, k, v)
    want = torch.autograd.grad(want_loss, (q, k, v))
    torch.testing.assert_close(loss, want_loss, rtol=1e-4, atol=1e-4)
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_transformer_encoder_layer_training_matches_eager(target):
    torch.manual_seed(2)
    width, seq = (8, 3) if target.name == "sim" else (256, 64)
    layer = torch.nn.TransformerEncoderLayer(width, 2, dim_feedforward=2 * width, dropout=0.0, batch_first=True)
    layer = layer.to(target.device)
    x = torch.randn(2, seq, width, device=target.device)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(seq, device=target.device)
    loss = compiled(lambda x: layer(x, src_mask=mask, is_causal=True).square().mean())(x)
    grads = torch.autograd.grad(loss, list(layer.parameters()))
    want_loss = layer(x, src_mask=mask, is_causal=True).square().mean()
    want = torch.autograd.grad(want_loss, list(layer.parameters()))
    torch.testing.assert_close(loss, want_loss, rtol=1e-4, atol=1e-5)
    for g, w in zip(grads, want):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------- 7. signs of zero


def test_signs_of_zero_follow_eager_on_the_device(target):
    z = torch.tensor([-0.0, 0.0, -0.0, 0.0, -1.0, 2.0, math.nan, -0.0] * 4, device=target.device)
    o = torch.tensor([0.0, -0.0, -0.0, 0.0, 0.0, -0.0, 0.0, math.nan] * 4, device=target.device)

    def f(z, o):
        return torch.relu(z), z.clamp(min=0), z.clamp(max=0), o.clamp(min=-0.0), F.hardtanh(z), z * 1, z + 0

    got = compiled(f)(z, o)
    for g, w in zip(got, f(z, o)):
        bits_equal(g, w)
    # maximum/minimum: CUDA's (IEEE 754-2019: -0 below +0), which the kernel computes on every
    # device (the CPU's own maximum picks either operand of a tie, by vector lane)
    got_max, got_min = compiled(lambda a, b: (torch.maximum(a, b), torch.minimum(a, b)))(z, o)
    if target.name == "gpu":
        bits_equal(got_max, torch.maximum(z, o))
        bits_equal(got_min, torch.minimum(z, o))
    from gint.fuzz.reference import ieee_maximum, ieee_minimum

    bits_equal(got_max.cpu(), ieee_maximum(z.cpu(), o.cpu()))
    bits_equal(got_min.cpu(), ieee_minimum(z.cpu(), o.cpu()))
