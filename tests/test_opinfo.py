"""PyTorch's OpInfo samples through ``torch.compile(backend="gint")`` against eager.

For each operator gint supports, every sample input OpInfo gives (float32,
float16/bfloat16, int32, int64 and bool where the OpInfo has them) runs compiled and
eagerly; results must match with torch's default tolerances for the dtype (exactly,
for integers and bools), and the report must show the operator ran in a gint
subgraph (a sample may fall back only for a stated reason that is not the operator
itself, e.g. an empty result or an integer computation). The simulator runs the first
samples of each operator in float32 and one integer or bool sample (CI time); the GPU
runs more of them in every dtype (``pytest -m gpu``).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing._internal.common_methods_invocations import op_db

from gint.conductor import gint_backend
from gint.conductor.report import Report, recording

OPS = [
    "abs", "neg", "reciprocal", "sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf",
    "erfc", "sigmoid", "floor", "ceil", "round", "trunc", "sign",
    "nn.functional.relu", "nn.functional.gelu", "nn.functional.silu", "nn.functional.mish",
    "nn.functional.softplus", "nn.functional.elu", "nn.functional.selu", "nn.functional.leaky_relu",
    "nn.functional.hardtanh", "nn.functional.hardsigmoid", "nn.functional.hardswish",
    "add", "sub", "rsub", "mul", "div", "pow", "maximum", "minimum", "fmod", "remainder", "atan2", "lerp",
    "addcmul", "addcdiv", "clamp", "where", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_not", "isnan", "isinf", "isfinite", "nan_to_num",
    # reductions and the composites built on them (row programs)
    "sum", "mean", "amax", "amin", "prod", "var", "std", "var_mean", "std_mean",
    "softmax", "log_softmax", "nn.functional.layer_norm", "nn.functional.rms_norm",
]  # fmt: skip
# Fallbacks that are not the operator's: an empty reduction runs eagerly (its result is
# the reduction's identity, or an error, as torch says); so do integer results and
# computations on integers (gint never rounds an integer).
NOT_THE_OPERATOR = ("empty result", "reduces an empty tensor", "result dtype torch.int", "exact for integers only")

_VARIANTS = {"div": ("no_rounding_mode", "trunc_rounding", "floor_rounding")}
INFOS = [
    info
    for info in op_db
    if info.name in OPS and info.variant_test_name in _VARIANTS.get(info.name, ("",))
]
SIM_SAMPLES = 2  # samples per operator under the simulator (float32 only)
GPU_SAMPLES = 8  # per operator and dtype on a GPU (each is a fresh torch.compile)


def _ident(info) -> str:
    return info.name + (f".{info.variant_test_name}" if info.variant_test_name else "")


INTEGRAL = (torch.int32, torch.int64, torch.bool)


def _dtypes(info, target) -> list[torch.dtype]:
    """float32, float16, bfloat16, int32, int64 and bool where the OpInfo has them; the
    simulator takes the first floating dtype and one integer or bool dtype."""
    supported = info.supported_dtypes("cuda" if target.name == "gpu" else "cpu")
    floats = [dt for dt in (torch.float32, torch.float16, torch.bfloat16) if dt in supported]
    integral = [dt for dt in INTEGRAL if dt in supported]
    if target.name == "sim":  # bool first where there is no floating dtype: bitwise ops run in gint on bools
        return floats[:1] + (integral[:1] if floats else [dt for dt in (torch.bool, torch.int32) if dt in integral])
    return floats + integral


def run_in_gint(fn, args):
    """``fn(*args)`` compiled afresh by the gint backend, with the report of what ran where."""
    torch._dynamo.reset()

    def backend(gm, example_inputs):
        return gint_backend(gm, example_inputs)

    with recording(Report()) as report:
        out = torch.compile(fn, backend=backend)(*args)
    return out, report


def _tensors(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _only_tensors_and_numbers(sample) -> bool:
    """Tensors, numbers, strings and tuples of ints (dims, normalized shapes)."""
    values = [sample.input, *sample.args, *sample.kwargs.values()]

    def usable(v) -> bool:
        if isinstance(v, list | tuple):
            return all(isinstance(item, int) for item in v)
        return isinstance(v, torch.Tensor | int | float | bool | str) or v is None

    return all(usable(v) for v in values)


@pytest.mark.parametrize("info", INFOS, ids=_ident)
def test_opinfo_samples(target, info):
    ran_in_gint = 0
    checked = 0
    for dtype in _dtypes(info, target):
        samples = list(info.sample_inputs(target.device, dtype, requires_grad=False))
        samples = [s for s in samples if _only_tensors_and_numbers(s)]
        count = SIM_SAMPLES if target.name == "sim" else GPU_SAMPLES
        samples = samples[: 1 if target.name == "sim" and dtype in INTEGRAL else count]
        for sample in samples:

            def fn(x, *args, _sample=sample):
                return info.op(x, *args, **_sample.kwargs)

            want = info.op(sample.input, *sample.args, **sample.kwargs)
            got, report = run_in_gint(fn, (sample.input, *sample.args))
            torch.testing.assert_close(got, want, equal_nan=True, msg=lambda m, dt=dtype: f"{_ident(info)} {dt}: {m}")
            checked += 1
            if report.subgraphs and report.coverage == 1.0:
                ran_in_gint += 1
            elif all(any(r in f.reason for r in NOT_THE_OPERATOR) for f in report.fallback):
                pass
            elif sum(w.numel() for w in _tensors(want)) > 0 and all(
                t.device == target.device for t in [sample.input, *sample.args] if isinstance(t, torch.Tensor)
            ):
                reasons = [f"{f.op}: {f.reason}" for f in report.fallback]
                pytest.fail(f"{_ident(info)} {dtype} sample {sample} did not run wholly in gint: {reasons}")
    assert checked, f"no usable OpInfo samples for {_ident(info)}"
    assert ran_in_gint, f"{_ident(info)}: no sample ran in gint"


def test_every_listed_op_has_an_opinfo():
    found = {info.name for info in INFOS}
    assert found == set(OPS)


def test_op_table_docs_are_current():
    from pathlib import Path

    from gint.conductor import optable

    committed = (Path(__file__).parent.parent / "docs" / "ops.md").read_text()
    assert committed == optable.markdown(), "docs/ops.md is stale: python -m gint.conductor.optable > docs/ops.md"


def _compiled_matches(fn, *args):
    got, report = run_in_gint(fn, args)
    want = fn(*args)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g, w, equal_nan=True)
    return report


def test_casts_round_where_eager_rounds(target):
    x = torch.randn(target.rows, target.cols, device=target.device) * 100
    y = torch.randn(target.rows, target.cols, device=target.device)

    def f(x, y):
        # explicit casts round (gint must round there too); arithmetic on 16-bit values
        # is float32 inside, rounded once on store, as Inductor does
        return x.to(torch.bfloat16).float() * y, x.half().float() * 3 - x, (x > 0).float() + y.to(torch.bool)

    report = _compiled_matches(f, x, y)
    assert report.coverage == 1.0


def test_activation_parameters_and_pow_exponents(target):
    import torch.nn.functional as F

    x = torch.randn(target.numel, device=target.device) * 3

    def f(x):
        return (
            F.elu(x, alpha=0.5),
            F.leaky_relu(x, 0.2),
            F.hardtanh(x, -0.5, 2.0),
            F.gelu(x, approximate="tanh"),
            F.softplus(x, beta=2.0, threshold=5.0),
            x.abs() ** 0.5 + x**2 + x**3 + x.abs() ** -0.5 + x**-1 + x**-2 + x.abs() ** 1.7 + 2.0**x,
        )

    assert _compiled_matches(f, x).coverage == 1.0


def test_math_on_broadcast_transposed_and_0d_inputs(target):
    a = torch.randn(target.cols, target.rows, device=target.device).t()  # transposed
    b = torch.randn(target.cols, device=target.device)  # broadcast along rows
    c = torch.tensor(0.75, device=target.device)  # 0-d

    def f(a, b, c):
        return torch.atan2(a, b) * torch.exp(c) + torch.remainder(a, b + 2) - torch.tanh(a * c)

    assert _compiled_matches(f, a, b, c).coverage == 1.0
