"""torch.compile(backend="gint") end to end, against eager PyTorch on random data."""

import logging

import pytest
import torch

import gint
from gint.conductor import GraphPartitioner, Options, gint_backend, register_backend

register_backend()


def compiled(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint", **kwargs)


def test_usage_example(target):
    @torch.compile(backend="gint")
    def f(x, y):
        return x + y * 2

    x, y = (torch.randn(1024, device=target.device) for _ in range(2))
    torch.testing.assert_close(f(x, y), x + y * 2)


def chain(a, b, c, d):
    t = (a * b - c) / (d.abs() + 1.5)
    t = torch.maximum(t, -a) + torch.relu(c - 2 * d)
    return torch.where(t > 0.25, t, b - t).neg()


def test_arithmetic_chain_is_one_subgraph(target):
    xs = [torch.randn(target.rows, target.cols, device=target.device) for _ in range(4)]
    torch.testing.assert_close(compiled(chain)(*xs), chain(*xs))
    report = gint.explain(chain, *xs)
    assert len(report.subgraphs) == 1 and report.coverage == 1.0
    assert "aten.where.self" in report.subgraphs[0].ops


def test_scalar_forms_alpha_and_rounding_modes(target):
    def f(x, y):
        return (
            torch.add(x, y, alpha=2.5),
            torch.sub(x, 3, alpha=2),
            torch.rsub(x, 1.5),
            torch.div(x, y, rounding_mode="trunc"),
            torch.div(x, y, rounding_mode="floor"),
            torch.div(x, 0.75, rounding_mode="floor"),
            x / 4,
            -x * 1.25,
        )

    x = torch.randn(target.numel, device=target.device) * 10
    y = torch.randn(target.numel, device=target.device)
    for got, want in zip(compiled(f)(x, y), f(x, y)):
        torch.testing.assert_close(got, want)
    assert gint.explain(f, x, y).coverage == 1.0


def test_twelve_inputs_are_split(target):
    def f(*xs):
        total = xs[0]
        for x in xs[1:]:
            total = total * 0.5 + x
        return total

    xs = [torch.randn(target.numel, device=target.device) for _ in range(12)]
    torch.testing.assert_close(compiled(f)(*xs), f(*xs))
    report = gint.explain(f, *xs)
    assert len(report.subgraphs) >= 2
    assert all(sub.num_tensors <= 8 for sub in report.subgraphs)
    assert report.coverage == 1.0


def test_unsupported_op_falls_back(target):
    def f(x, y):
        a = x * y + 1
        return torch.flip(a, [0]) * 2 - y

    x, y = (torch.randn(target.numel, device=target.device) for _ in range(2))
    torch.testing.assert_close(compiled(f)(x, y), f(x, y))
    report = gint.explain(f, x, y)
    assert [fb.op for fb in report.fallback] == ["aten.flip.default"]
    assert "no gint lowering" in report.fallback[0].reason
    assert 0 < report.coverage < 1
    assert "flip" in str(report)


def test_integer_results_stay_eager(target):
    def f(i, x):
        return (i + 1) * 2, x * 2

    i = torch.randint(-(2**30), 2**30, (target.numel,), device=target.device, dtype=torch.int32)
    x = torch.randn(target.numel, device=target.device)
    got = compiled(f)(i, x)
    torch.testing.assert_close(got[0], f(i, x)[0])  # exact: integers never pass through float32
    report = gint.explain(f, i, x)
    assert {fb.op for fb in report.fallback} == {"aten.add.Tensor", "aten.mul.Tensor"}
    assert "integer" in report.fallback[0].reason


def test_mixed_dtypes_and_bool_results(target):
    def f(h, b, i):
        return h * b + i, (h > b) & (i < 3)

    n = target.numel
    h = torch.randn(n, device=target.device).half()
    b = torch.randn(n, device=target.device).bfloat16()
    i = torch.randint(-5, 5, (n,), device=target.device)
    got, want = compiled(f)(h, b, i), f(h, b, i)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w, atol=1e-2, rtol=1e-2)


def test_training_gradients_match(target):
    def loss_fn(x, w, b):
        h = torch.relu(x * w + b) - 0.5 * x
        return (h * h / (w.abs() + 1)).sum()

    args = [torch.randn(target.rows, target.cols, device=target.device, requires_grad=True) for _ in range(3)]
    ref = [a.detach().clone().requires_grad_() for a in args]
    loss = compiled(loss_fn)(*args)
    loss.backward()
    want = loss_fn(*ref)
    want.backward()
    torch.testing.assert_close(loss, want)
    for a, r in zip(args, ref):
        torch.testing.assert_close(a.grad, r.grad)


def test_backward_graph_runs_in_gint(target):
    def loss_fn(x, w):
        return (torch.relu(x * w) * w).sum()

    x, w = (torch.randn(target.numel, device=target.device, requires_grad=True) for _ in range(2))
    report = gint.explain(lambda a, b: torch.autograd.grad(loss_fn(a, b), (a, b)), x, w)
    assert report.graphs >= 2  # forward and backward
    ops = {op for sub in report.subgraphs for op in sub.ops}
    assert "aten.le.Scalar" in ops or "aten.where.self" in ops  # relu's backward, decomposed


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_no_grad_and_inference_mode(target, context):
    xs = [torch.randn(target.numel, device=target.device, requires_grad=True) for _ in range(4)]
    fn = compiled(chain)
    with context():
        got = fn(*xs)
        want = chain(*xs)
    torch.testing.assert_close(got, want)
    assert not got.requires_grad


def test_second_call_does_not_compile(target):
    xs = [torch.randn(target.numel, device=target.device) for _ in range(4)]
    fn = compiled(chain)
    fn(*xs)
    before = gint.counters()
    fresh = [torch.randn(target.numel, device=target.device) for _ in range(4)]
    torch.testing.assert_close(fn(*fresh), chain(*fresh))
    after = gint.counters()
    assert after["graphs_compiled"] == before["graphs_compiled"]
    assert after["programs_built"] == before["programs_built"]
    assert after["launches"] == before["launches"] + 1


def test_same_structure_reuses_the_program(target):
    xs = [torch.randn(target.numel, device=target.device) for _ in range(4)]
    compiled(chain)(*xs)
    before = gint.counters()["programs_built"]
    torch._dynamo.reset()
    torch.compile(chain, backend="gint")(*xs)  # a new graph with the same structure
    assert gint.counters()["programs_built"] == before


def test_options_are_validated(target):
    x = torch.randn(8, device=target.device)
    with pytest.raises(Exception, match="unknown gint option"):
        compiled(chain, options={"max_tensor": 4})(x, x, x, x)
    with pytest.raises(Exception, match="must be an int"):
        compiled(chain, options={"max_tensors": "4"})(x, x, x, x)
    with pytest.raises(ValueError, match="max_tensors"):
        Options.parse({"max_tensors": 9})
    with pytest.raises(ValueError, match="no mode"):
        gint_backend(None, [], mode="max-autotune")


def _report_of(fn, *args, options):
    from gint.conductor.report import Report, recording

    torch._dynamo.reset()
    with recording(Report()) as report:
        out = torch.compile(fn, backend="gint", options=options)(*args)
    return out, report


def test_max_tensors_option_splits_more(target):
    xs = [torch.randn(target.numel, device=target.device) for _ in range(4)]
    out, report = _report_of(chain, *xs, options={"max_tensors": 3})
    torch.testing.assert_close(out, chain(*xs))
    assert len(report.subgraphs) >= 2, report  # one subgraph at the default of 8
    assert all(sub.num_tensors <= 3 for sub in report.subgraphs), report
    _, default = _report_of(chain, *xs, options={})
    assert len(default.subgraphs) == 1 and default.subgraphs[0].num_tensors == 5


def test_min_ops_option_keeps_small_groups_eager(target):
    def f(x):
        return torch.flip(x * 2, [0]) + 1

    x = torch.randn(target.numel, device=target.device)
    out, report = _report_of(f, x, options={"min_ops": 2})
    torch.testing.assert_close(out, f(x))
    assert not report.subgraphs  # two groups of one op each, both below min_ops
    reasons = {f.op: f.reason for f in report.fallback}
    assert "below min_ops=2" in reasons["aten.mul.Tensor"] and "below min_ops=2" in reasons["aten.add.Tensor"]
    _, default = _report_of(f, x, options={})
    assert len(default.subgraphs) == 2


def test_register_backend_is_idempotent():
    register_backend()
    register_backend()
    assert "gint" in torch._dynamo.list_backends()


def test_fallbacks_are_logged(target, caplog):
    x = torch.randn(8, device=target.device)
    with caplog.at_level(logging.DEBUG, logger="gint"):
        gint.explain(lambda a: torch.flip(a * 2, [0]), x)
    assert any("flip" in r.getMessage() and "eager" in r.getMessage() for r in caplog.records)


def test_partitioner_alone_on_a_traced_graph():
    """The partition pass is testable without the backend: plain data out."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    def f(x, y):
        return torch.cumsum(x + y, 0) * y

    with FakeTensorMode():
        x, y = torch.randn(16), torch.randn(16)
        gm = make_fx(f)(x, y)
    plan = GraphPartitioner(gm, device=torch.device("cpu")).plan()
    assert [[n.target for n in p] for p in plan.partitions] == [
        [torch.ops.aten.add.Tensor],
        [torch.ops.aten.mul.Tensor],
    ]
    assert [n.target for n in plan.fallback] == [torch.ops.aten.cumsum.default]


def test_installed_entry_point_registers_the_backend(tmp_path):
    """`pip install` alone makes backend="gint" work, in a fresh process."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "x = torch.randn(64)\n"
        "torch.testing.assert_close(torch.compile(lambda a: a * 3 + 1, backend='gint')(x), x * 3 + 1)\n"
        "import gint; assert gint.counters()['launches'] == 1, gint.counters()\n"
    )
    env = {**__import__("os").environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_main_job_runs(tmp_path):
    import subprocess
    import sys

    env = {**__import__("os").environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "gint", "--size", "1000"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "check against eager PyTorch: OK" in result.stdout
    assert "bytecode of subgraph 0" in result.stdout


def test_no_device_warns_once_and_runs_eagerly(monkeypatch):
    """No CUDA device and no simulator: eager results, and one warning that says what to do."""
    import warnings

    from gint.conductor import backend, report

    monkeypatch.setattr(backend, "target_device", lambda: None)
    monkeypatch.setattr(report, "_warned", set())
    x = torch.randn(50)
    torch._dynamo.reset()
    fn = torch.compile(lambda t: torch.sin(t) * 2 + 1, backend="gint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.testing.assert_close(fn(x), torch.sin(x) * 2 + 1)
        torch.testing.assert_close(fn(x + 1), torch.sin(x + 1) * 2 + 1)
    messages = [str(w.message) for w in caught if "no CUDA device" in str(w.message)]
    assert len(messages) == 1 and "NUMBA_ENABLE_CUDASIM=1" in messages[0]
