"""Shape-agnostic bytecode: new shapes reuse programs, guards catch dtype/rank/device
changes, symbolic sizes become tensor inputs, and CUDA graphs replay gint launches."""

import logging

import pytest
import torch

import gint
from gint.conductor import register_backend
from gint.host import executor
from gint.kernel.target import SIMULATOR

register_backend()
needs_gpu = pytest.mark.skipif(SIMULATOR or not torch.cuda.is_available(), reason="needs a CUDA GPU")

SHAPES_1D = [5, 7, 16, 33, 64, 100, 3, 41, 77, 128]
SHAPES_2D = [(2, 3), (3, 17), (4, 40), (5, 8), (2, 31), (3, 5), (6, 11), (2, 64), (4, 7), (7, 2)]


def normalize(x, y):
    z = torch.relu(x * 2 + y)
    s = z.sum(dim=-1, keepdim=True)  # a reduction (a row program)
    return (z - s / z.shape[-1]) * 0.5


def shapes_for(target):
    """20 shapes: 10 of rank 1, then 10 of rank 2 (larger on a GPU)."""
    scale = 1 if target.name == "sim" else 997
    return [(n * scale,) for n in SHAPES_1D] + [(r * scale, c) for r, c in SHAPES_2D]


def _inputs(shape, device):
    x = torch.randn(shape, device=device)
    y = torch.randn(shape[-1:], device=device)  # broadcast along the rows
    return x, y


@pytest.mark.parametrize("dynamic", [None, True, "mark"])
def test_twenty_shapes_build_one_program_per_structure(target, dynamic):
    torch._dynamo.reset()
    kwargs = {} if dynamic == "mark" else {"dynamic": dynamic}
    fn = torch.compile(normalize, backend="gint", **kwargs)
    # static first, then automatic dynamic after a change: one recompile per rank
    settle = 2 if dynamic is None else 1
    built_after_first = None
    per_rank: dict[int, list[dict]] = {1: [], 2: []}
    shapes = shapes_for(target)
    if dynamic == "mark":  # the same path as dynamic=True, fewer shapes keep CI short
        shapes = shapes[:5] + shapes[10:15]
    for shape in shapes:
        x, y = _inputs(shape, target.device)
        if dynamic == "mark":
            for d in range(x.dim()):
                torch._dynamo.mark_dynamic(x, d)
            torch._dynamo.mark_dynamic(y, 0)
        torch.testing.assert_close(fn(x, y), normalize(x, y))
        counters = gint.counters()
        per_rank[len(shape)].append(counters)
        if built_after_first is None:
            built_after_first = counters["kernel_builds"]
    for rank, seen in per_rank.items():
        settled = seen[settle - 1]
        for later in seen[settle:]:
            assert later["programs_built"] == settled["programs_built"], f"rank {rank}: a new shape built a program"
            assert later["graphs_compiled"] == settled["graphs_compiled"], f"rank {rank}: a new shape recompiled"
        assert seen[-1]["launches"] > settled["launches"]
    assert gint.counters()["kernel_builds"] == built_after_first


def test_symbolic_sizes_become_tensor_inputs(target):
    def f(x):
        return x * x.shape[0] + x / x.shape[-1]

    torch._dynamo.reset()
    fn = torch.compile(f, backend="gint", dynamic=True)
    x = torch.randn(5, 3, device=target.device)
    fn(x)
    before = gint.counters()
    for shape in [(7, 4), (3, 9), (6, 6)]:
        x = torch.randn(shape, device=target.device)
        torch.testing.assert_close(fn(x), f(x))
    after = gint.counters()
    assert after["programs_built"] == before["programs_built"]
    assert after["graphs_compiled"] == before["graphs_compiled"]
    x = torch.randn(5, 3, device=target.device)
    torch._dynamo.mark_dynamic(x, 0)
    torch._dynamo.mark_dynamic(x, 1)
    report = gint.explain(f, x)
    assert len(report.subgraphs) == 1
    assert report.subgraphs[0].ops == ["aten.mul.Tensor", "aten.div.Tensor", "aten.add.Tensor"]
    assert all("symbolic size" in entry.reason for entry in report.fallback)


def test_structure_that_depends_on_a_size_is_right(target, caplog):
    def f(x):
        if x.shape[0] > 8:  # dynamo guards on this
            return torch.relu(x) * 2
        return torch.flip(x, [0]) - 1  # flip runs eagerly, with its reason logged

    torch._dynamo.reset()
    fn = torch.compile(f, backend="gint", dynamic=True)
    with caplog.at_level(logging.DEBUG, logger="gint"):
        for n in (4, 12, 6, 20):
            x = torch.randn(n, device=target.device)
            torch.testing.assert_close(fn(x), f(x))
    assert any("flip" in r.getMessage() and "eagerly" in r.getMessage() for r in caplog.records)


def test_dtype_and_rank_changes_recompile(target):
    def f(x):
        return torch.relu(x * 2) + 1

    torch._dynamo.reset()
    fn = torch.compile(f, backend="gint")
    cases = [
        torch.randn(64, device=target.device),
        torch.randn(64, device=target.device).to(torch.bfloat16),
        torch.randn(64, device=target.device).to(torch.float16),
        torch.randn(4, 16, device=target.device),
        torch.randn(2, 4, 8, device=target.device),
    ]
    graphs = gint.counters()["graphs_compiled"]
    for x in cases:
        got = fn(x)
        assert got.dtype == x.dtype and got.shape == x.shape
        torch.testing.assert_close(got, f(x))
    assert gint.counters()["graphs_compiled"] >= graphs + len(cases)


@pytest.mark.gpu
@needs_gpu
def test_device_change_falls_back_correctly():
    def f(x):
        return torch.relu(x * 2) + 1

    torch._dynamo.reset()
    fn = torch.compile(f, backend="gint")
    x = torch.randn(64, device="cuda")
    torch.testing.assert_close(fn(x), f(x))
    cpu = torch.randn(64)
    got = fn(cpu)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, f(cpu))
    reasons = [entry.reason for entry in gint.explain(f, cpu).fallback]
    assert reasons and all("cpu" in reason for reason in reasons)


def chain(a, b, c):
    t = (a * b - c) / (c.abs() + 1.5)
    return torch.where(t > 0.25, t, b - t).neg() * 3


def test_cuda_graphs_option_off_a_gpu_runs_without_graphs(target):
    if target.name != "sim":
        pytest.skip("the simulator's CPU tensors are what cannot be captured")
    torch._dynamo.reset()
    fn = torch.compile(chain, backend="gint", options={"cuda_graphs": True})
    xs = [torch.randn(40) for _ in range(3)]
    torch.testing.assert_close(fn(*xs), chain(*xs))
    torch._dynamo.reset()
    with pytest.raises(Exception, match="must be a bool"):
        torch.compile(chain, backend="gint", options={"cuda_graphs": 1})(*xs)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dynamic", [False, True])
def test_cuda_graphs_replay_gint_launches(dynamic):
    torch._dynamo.reset()
    fn = torch.compile(chain, backend="gint", options={"cuda_graphs": True}, dynamic=dynamic)
    for n in ([4099] * 4 if not dynamic else [4099, 4099, 4099, 8191, 8191, 8191, 12007, 12007]):
        xs = [torch.randn(n, device="cuda") for _ in range(3)]
        got = fn(*xs)
        torch.testing.assert_close(got, chain(*xs))
    launches = gint.counters()["launches"]
    xs = [torch.randn(n, device="cuda") for _ in range(3)]
    for _ in range(3):
        torch.testing.assert_close(fn(*xs).clone(), chain(*xs))
    torch.cuda.synchronize()
    assert gint.counters()["launches"] == launches, "a replayed graph launched gint from the host"


@pytest.mark.gpu
@needs_gpu
def test_cuda_graphs_training_matches_eager():
    torch._dynamo.reset()
    fn = torch.compile(chain, backend="gint", options={"cuda_graphs": True})
    for _ in range(3):
        xs = [torch.randn(4096, device="cuda", requires_grad=True) for _ in range(3)]
        ref = [x.detach().clone().requires_grad_() for x in xs]
        fn(*xs).sum().backward()
        chain(*ref).sum().backward()
        for x, r in zip(xs, ref):
            torch.testing.assert_close(x.grad, r.grad)


@pytest.mark.gpu
@needs_gpu
def test_new_layout_during_capture_is_a_clear_error():
    from gint.host import frontend

    @frontend.bytecode
    def scale(x, out):
        out.store(x.load() * 3.0)

    x = torch.randn(777, device="cuda")
    out = torch.empty_like(x)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(executor.ExecutionError, match="CUDA graph was being captured"), torch.cuda.graph(graph):
        executor.run(scale.program, [x, out])
    # warmed up first, the same launch captures and replays
    executor.run(scale.program, [x, out])
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        executor.run(scale.program, [x, out])
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, x * 3)
