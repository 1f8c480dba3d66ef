"""The bad-input matrix: what users throw at ``torch.compile(backend="gint")``, each
against eager PyTorch. Every case gives eager's result (bit for bit where eager's is
exact: no math function, no reduction order involved) or the error eager raises."""

from __future__ import annotations

import math

import pytest
import torch

from gint.conductor import register_backend

register_backend()


def _run(fn, args):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint")(*args)


def _tensors(out):
    return out if isinstance(out, tuple | list) else (out,)


def _same(got, want, exact: bool):
    for g, w in zip(_tensors(got), _tensors(want), strict=True):
        if not isinstance(w, torch.Tensor):
            assert g == w
            continue
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
        if exact:
            torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True)
            if w.is_floating_point():
                keep = ~torch.isnan(w)
                assert torch.equal(torch.signbit(g[keep]), torch.signbit(w[keep])), "signs of zero differ"
        else:
            torch.testing.assert_close(g, w, equal_nan=True)


def r(*shape, dtype=torch.float32, device="cpu"):
    if dtype == torch.bool:
        return torch.rand(shape, device=device) > 0.5
    if not dtype.is_floating_point and not dtype.is_complex:
        return torch.randint(-50, 50, shape, device=device, dtype=dtype)
    return torch.randn(shape, device=device, dtype=dtype)


def _cases(d):
    """(name, function, inputs, exact)."""
    x, y = r(4, 70, device=d), r(4, 70, device=d)
    specials = torch.tensor([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-45, 3e38, -1.0] * 4, device=d)
    many = [r(16, device=d) for _ in range(11)]
    five = r(2, 1, 3, 1, 2, device=d)
    nine = r(2, 1, 2, 1, 2, 1, 2, 1, 3, device=d)

    def chain100(a):
        for k in range(100):
            a = a * 1.01 + 0.5 if k % 2 else a - 0.25
        return a

    def inplace(a, b):
        a = a.clone()
        a.mul_(2).add_(b)
        return a

    def out_arg(a, b):
        out = torch.empty_like(a)
        torch.add(a, b, out=out)
        return out * 2

    def mutate_input(a, b):
        a.add_(1)  # a mutated input: eager semantics must hold for the caller's tensor too
        return a * b

    return [
        ("empty", lambda a: a * 2 + 1, [r(0, 5, device=d)], True),
        ("empty reduction dim", lambda a: (a.sum(-1) + 1, a.amax(0)), [r(3, 0, device=d)], True),
        ("0-d", lambda a, b: a * b + 1, [torch.tensor(3.0, device=d), x], True),
        ("0-d only", lambda a: a * 2 - 1, [torch.tensor(-0.0, device=d)], True),
        ("python scalars", lambda a, s, t: a * s + t, [x, 2.5, -3], True),
        ("sliced with step", lambda a, b: a[:, ::3] * b[:, 1::3], [x, y], True),
        ("channels_last", lambda a: a * 2 + a.sin(), [r(2, 3, 4, 5, device=d).to(memory_format=torch.channels_last)], False),
        ("expanded", lambda a, b: a.expand(4, 70) + b, [r(1, 70, device=d), y], True),
        ("aliasing inputs", lambda a, b: a * b - a, [x, x], True),
        ("views of one tensor", lambda a: a[:, :35] * a[:, 35:], [x], True),
        ("in-place ops", inplace, [x, y], True),
        ("out= op", out_arg, [x, y], True),
        ("mutated input", mutate_input, [x.clone(), y], True),
        ("output aliases input", lambda a: (a, a * 2), [x], True),
        ("nan inf -0", lambda a: (a * 2, a + 0, a.abs(), -a, a > 0, a == a, torch.relu(a)), [specials], True),
        ("integer overflow", lambda a: a * 2**20 + 7, [r(64, dtype=torch.int32, device=d) * 2**11], True),
        ("integer division by zero", lambda a, b: (a / b, torch.div(a, b, rounding_mode="floor")),
         [r(64, dtype=torch.int64, device=d), torch.zeros(64, dtype=torch.int64, device=d) + (torch.arange(64, device=d) % 3)], True),
        ("float division by zero", lambda a: (a / 0, -a / 0.0, torch.fmod(a, 0.0), a * 0), [x], True),
        ("bool", lambda a, b: (a & b, a | ~b, a ^ b, a + b, a * 2), [r(64, dtype=torch.bool, device=d), r(64, dtype=torch.bool, device=d)], True),
        ("mixed dtypes", lambda a, b, c: (a + b, b * c, a < c, (b + 1).half() * a), [x.half(), r(4, 70, dtype=torch.int32, device=d), y.bfloat16()], True),
        ("promotion with python scalars", lambda a, b: (a + 1, a * 0.1, a > 0.3, b + 0.5, b * 3, b == 2), [x.bfloat16(), r(4, 70, dtype=torch.int64, device=d)], True),
        ("float64", lambda a, b: a * b + 1, [x.double(), y.double()], True),
        ("complex", lambda a: a * 2 + 1, [r(8, dtype=torch.complex64, device=d)], True),
        ("some inputs need grad", lambda a, b: a * b + 1, [x.clone().requires_grad_(), y], True),
        ("more than 8 inputs", lambda *xs: sum(t * (k + 1) for k, t in enumerate(xs)), many, True),
        ("100-op chain", chain100, [x], True),
        ("5-D", lambda a, b: a * b + 1, [five, r(2, 3, 1, 4, 2, device=d)], True),
        ("9-D", lambda a: a * 2 + 1, [nine.transpose(0, 8)], True),
        ("keepdim", lambda a: (a.sum(-1, keepdim=True) - a, a.amax(0, keepdim=True), a.mean((0, 1), keepdim=True)), [x], False),
        ("whole-tensor reduction", lambda a: (a.sum(), a.amax()), [x], False),
        ("int reductions", lambda a: (a.sum(-1), a.amax(-1), a.prod(0)), [r(4, 7, dtype=torch.int64, device=d)], True),
    ]


CASES = _cases("cpu")


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_input(target, index):
    torch.manual_seed(index)
    name, fn, args, exact = _cases(target.device)[index]
    if name == "9-D" and target.name == "sim":
        args = [r(2, 1, 2, 1, 3, device=target.device).transpose(0, 4)]  # 5-D: fewer simulated launches
    eager_args = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        want = fn(*eager_args)
    except Exception as error:  # noqa: BLE001 - eager's error: gint must raise the same kind
        with pytest.raises(type(error)):
            _run(fn, args)
        return
    got = _run(fn, args)
    _same(got, want, exact)
    for a, b in zip(args, eager_args):  # mutated inputs end as eager leaves them
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
