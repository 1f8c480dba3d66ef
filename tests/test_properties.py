"""Property test: random elementwise and reduction graphs through
``torch.compile(backend="gint")`` against eager PyTorch.

Hypothesis draws the inputs (float32, float16, bfloat16, int32, int64 and bool; full,
broadcast, transposed and 0-d; rows longer than a row program's chunk; up to 6-D under
the simulator, 8-D on a GPU) and a chain of operators over them (arithmetic with
tensors and Python numbers, comparisons, where, math functions, casts, and sum, amax,
amin and mean along the last dim, broadcast back). Exact results (integers, bools,
comparisons of exactly computed values) must equal eager's; floating-point results
must be no further from a float64 run of the same graph than eager's own, within a
rounding or two of their dtype (gint holds 16-bit intermediates in float32, as
Inductor does). ``GINT_PROPERTY_EXAMPLES`` sets the number of graphs (default: 25
under the simulator, 200 on a GPU).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gint.conductor import register_backend
from gint.kernel.target import SIMULATOR

register_backend()

EXAMPLES = int(os.environ.get("GINT_PROPERTY_EXAMPLES", "25" if SIMULATOR else "200"))
DEVICE = torch.device("cpu" if SIMULATOR else "cuda")
FLOATS = (torch.float32, torch.float16, torch.bfloat16)
DTYPES = FLOATS + (torch.int32, torch.int64, torch.bool)

# name -> (arity, inexact): inexact results (math functions, sums) are never compared exactly
UNARY = {
    "neg": (lambda a: -a, False),
    "abs": (torch.abs, False),
    "relu": (torch.relu, False),
    "sigmoid": (torch.sigmoid, True),
    "tanh": (torch.tanh, True),
    "exp": (lambda a: torch.exp(a.clamp(max=20) if a.is_floating_point() else a.float().clamp(max=20)), True),
    "sqrt": (lambda a: torch.sqrt(a.abs()), True),
    "floor": (torch.floor, False),
    "half": (lambda a: a.half(), False),
    "float": (lambda a: a.float(), False),
    "bool": (lambda a: a.bool(), False),
}
BINARY = {
    "add": torch.add,
    "sub": lambda a, b: a - b if not (a.dtype == torch.bool and b.dtype == torch.bool) else a ^ b,
    "mul": torch.mul,
    "div": lambda a, b: a / (b.abs() + 1 if b.dtype != torch.bool else b.float() + 1),
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
COMPARE = {"lt": torch.lt, "ge": torch.ge, "eq": torch.eq, "ne": torch.ne}
SCALAR = {"add_s": lambda a, s: a + s, "mul_s": lambda a, s: a * s, "lt_s": lambda a, s: a < s, "rsub_s": lambda a, s: s - a}
REDUCE = {"sum": lambda a: a.sum(-1, keepdim=True), "amax": lambda a: a.amax(-1, keepdim=True),
          "amin": lambda a: a.amin(-1, keepdim=True), "mean": lambda a: a.mean(-1, keepdim=True)}  # fmt: skip


@st.composite
def graphs(draw):
    rank = draw(st.integers(1, 6 if SIMULATOR else 8))
    row = draw(st.sampled_from([1, 5, 37, 300] if SIMULATOR else [1, 64, 300, 4099]))
    outer = [draw(st.integers(1, 2 if SIMULATOR else 5)) for _ in range(rank - 1)]
    shape = tuple(outer + [row])
    inputs = []
    for _ in range(draw(st.integers(1, 3))):
        dtype = draw(st.sampled_from(DTYPES))
        form = draw(st.sampled_from(["full", "full", "row", "column", "scalar", "transposed"]))
        inputs.append((dtype, form))
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "compare", "scalar", "where", "reduce"]))
        if kind == "unary":
            steps.append((kind, draw(st.sampled_from(sorted(UNARY)))))
        elif kind in ("binary", "compare"):
            steps.append((kind, draw(st.sampled_from(sorted(BINARY if kind == "binary" else COMPARE)))))
        elif kind == "scalar":
            number = draw(st.sampled_from([0.1, 3, -1.5, 2049, 1 / 3, 0.0]))
            steps.append((kind, draw(st.sampled_from(sorted(SCALAR))), number))
        elif kind == "where":
            steps.append((kind,))
        else:
            steps.append((kind, draw(st.sampled_from(sorted(REDUCE)))))
    picks = [draw(st.integers(0, 1000)) for _ in steps]
    return shape, inputs, steps, picks, draw(st.integers(0, 2**31 - 1))


def _make(shape, dtype, form, generator):
    if form == "row":
        shape = shape[-1:]
    elif form == "column":
        shape = shape[:-1] + (1,)
    elif form == "scalar":
        shape = ()
    if dtype == torch.bool:
        t = torch.rand(shape, generator=generator) > 0.5
    elif dtype.is_floating_point:
        t = (torch.randn(shape, generator=generator) * 3).to(dtype)
    else:
        t = torch.randint(-(2**30), 2**30, shape, generator=generator).to(dtype)
        if t.numel() > 2:
            t.view(-1)[::3] = torch.randint(-5, 5, t.view(-1)[::3].shape, generator=generator).to(dtype)
    if form == "transposed" and len(shape) >= 2:
        t = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    return t.to(DEVICE)


def plan(steps, picks, n_inputs: int):
    """The graph's operations: (step, index of a, index of b) for each value it appends,
    and whether that value is *exact* (made of operations whose float32 result is exact:
    no math function, no sum or mean). A comparison or ``where`` reads only exact values:
    a comparison of rounded results could flip."""
    kept, exact = [], [True] * n_inputs
    for step, pick in zip(steps, picks):
        n = len(exact)
        ia, ib = pick % n, (pick // 7) % n
        kind, name = step[0], step[1] if len(step) > 1 else None
        if kind == "unary":
            ok = exact[ia] and not UNARY[name][1]
        elif kind == "binary":
            ok = exact[ia] and exact[ib]
        elif kind == "compare" or (kind == "scalar" and name == "lt_s") or kind == "where":
            if not (exact[ia] and exact[ib] and exact[-1]):
                continue
            ok = True
        elif kind == "scalar":
            ok = exact[ia]
        else:
            ok = exact[ia] and exact[ib] and name in ("amax", "amin")
        kept.append((step, ia, ib))
        exact.append(ok)
    return kept, exact[n_inputs:]


def build(kept):
    """The graph as a Python function of its inputs (one output per value it computes)."""

    def fn(*xs):
        values = list(xs)
        for step, ia, ib in kept:
            a, b = values[ia], values[ib]
            kind = step[0]
            if kind == "unary":
                out = UNARY[step[1]][0](a)
            elif kind == "binary":
                out = BINARY[step[1]](a, b)
            elif kind == "compare":
                out = COMPARE[step[1]](a, b)
            elif kind == "scalar":
                out = SCALAR[step[1]](a, step[2])
            elif kind == "where":
                out = torch.where(a if a.dtype == torch.bool else a > 0, b, values[-1])
            else:
                operand = a.int() if a.dtype == torch.bool else a
                out = REDUCE[step[1]](operand) + b if a.dim() else a + b
            values.append(out)
        return tuple(values[len(xs) :])

    return fn


def _upcast(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t


def _check(got, want, ref64, exact: bool):
    """Bit for bit where eager's result is exact and gint computes it as eager does (every
    integer and bool, and float32); else no further from float64 than eager, within a
    couple of roundings of the dtype (16-bit intermediates are float32 inside gint)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if not want.is_floating_point() or (exact and want.dtype == torch.float32):
        torch.testing.assert_close(got.cpu(), want.cpu(), rtol=0, atol=0, equal_nan=True)
        return
    g, w, r = got.double().cpu(), want.double().cpu(), ref64.double().cpu()
    finite = torch.isfinite(w) & torch.isfinite(r)
    assert torch.equal(torch.isnan(g)[finite], torch.isnan(w)[finite]), "nan where eager has a number"
    ulp = {torch.float32: 2**-23, torch.float16: 2**-10, torch.bfloat16: 2**-7}[want.dtype]
    allowed = 2 * (w - r).abs() + 4 * ulp * (r.abs() + 1)
    bad = ((g - r).abs() > allowed) & finite
    assert not bad.any(), f"{int(bad.sum())} element(s) further from float64 than eager: {g[bad][:4]} vs {w[bad][:4]}, float64 {r[bad][:4]}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(graphs())
def test_random_graphs_match_eager(graph):
    shape, inputs, steps, picks, seed = graph
    generator = torch.Generator().manual_seed(seed)
    xs = [_make(shape, dtype, form, generator) for dtype, form in inputs]
    kept, exact = plan(steps, picks, len(xs))
    if not kept:
        return
    fn = build(kept)
    try:
        want = fn(*xs)
    except RuntimeError:
        return  # eager rejects this graph (a dtype combination it does not support): nothing to match
    ref64 = fn(*(_upcast(x) for x in xs))
    torch._dynamo.reset()
    got = torch.compile(fn, backend="gint")(*xs)
    assert len(got) == len(want)
    for g, w, r, e in zip(got, want, ref64, exact):
        _check(g, w, r, e)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_each_dtype_through_a_chain(dtype):
    """Not left to chance: every dtype through arithmetic, a comparison and a reduction."""
    generator = torch.Generator().manual_seed(3)
    x = _make((3, 300), dtype, "full", generator)
    y = _make((3, 300), dtype, "transposed", generator)

    def f(x, y):
        return x + y, x < y, (x * 2).amax(-1, keepdim=True) + y

    torch._dynamo.reset()
    got = torch.compile(f, backend="gint")(x, y)
    for g, w in zip(got, f(x, y)):
        torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True)
