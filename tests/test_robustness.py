"""Regression tests for crashes, lost compiles and unchecked launches (each failed on main
42da375): gint compiles or runs eagerly, never raises into the user's program, and
never launches what the verifier did not see."""

import threading
import warnings

import pytest
import torch

import gint
from gint import isa
from gint.conductor import backend, register_backend
from gint.conductor.report import Report, recording
from gint.host import executor
from gint.host.frontend import Assembler, bytecode
from gint.host.program import Program
from gint.host.verifier import VerificationError

register_backend()


def compiled(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, backend="gint", **kwargs)


# ------------------------------------------------- 8. a partition nothing reads (BertModel)


def test_a_graph_with_results_nothing_reads_compiles(target):
    """A graph may hold nodes whose results nothing uses; they are dropped, not compiled
    into a subgraph with no outputs."""
    x = torch.randn(target.numel, device=target.device)
    traced = torch.fx.experimental.proxy_tensor.make_fx(lambda x: x * 3 + 1, tracing_mode="fake")(x)
    graph = traced.graph
    x_node = next(iter(graph.nodes))
    with graph.inserting_before(next(n for n in graph.nodes if n.op == "output")):
        dead = graph.call_function(torch.ops.aten.exp.default, (x_node,))
        graph.call_function(torch.ops.aten.sin.default, (dead,))
    for node in graph.nodes:  # as make_fx records them
        if node.op == "call_function":
            node.meta["val"] = node.target(*(a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in node.args))
    traced.recompile()
    forward = backend.compile_forward(traced, options=gint.conductor.Options())
    torch.testing.assert_close(forward(x), x * 3 + 1)


def test_transformers_bert_runs(target):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=100
    )
    model = transformers.BertModel(config).eval().to(target.device)
    batch, seq = (2, 3) if target.name == "sim" else (8, 128)  # the simulator: a second a row program's row
    ids = torch.randint(0, 100, (batch, seq), device=target.device)
    mask = torch.ones(batch, seq, dtype=torch.long, device=target.device)
    mask[1, seq - 1 :] = 0
    torch._dynamo.reset()
    with torch.no_grad():
        got = torch.compile(model, backend="gint")(ids, attention_mask=mask).last_hidden_state
        want = model(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- 9. any rank


@pytest.mark.parametrize("rank", [5, 6, 7, 8, 9])
def test_broadcasts_of_any_rank(target, rank):
    """Domains of more dimensions than the kernel's table: the smallest run on the host
    (one launch per index: the simulator, at about a second a launch, takes ranks 5 and 6)."""
    if target.name == "sim" and rank > 6:
        pytest.skip("32+ simulated launches per subgraph: on the GPU only")
    torch.manual_seed(rank)
    shape_a = [2] * (rank - 1) + [3]
    shape_b = [1 if d % 2 else 2 for d in range(rank - 1)] + [3]  # broadcasts keep dims from merging
    a = torch.randn(shape_a, device=target.device)
    b = torch.randn(shape_b, device=target.device)
    c = torch.randn(shape_a[::-1], device=target.device).permute(*reversed(range(rank)))  # transposed

    def f(a, b, c):
        return a * b + c, (a - c).sum(-1)

    got = compiled(f)(a, b, c)
    for g, w in zip(got, f(a, b, c)):
        torch.testing.assert_close(g, w)
    assert gint.explain(f, a, b, c).coverage == 1.0


# ------------------------------------------------- 10. a Python float that changes


def test_a_changing_python_float_compiles_once_and_runs_in_gint(target):
    x = torch.randn(target.numel, device=target.device)

    def f(x, s):
        return x * s + 1

    counters = torch._dynamo.utils.counters
    torch._dynamo.reset()
    counters.clear()
    g = torch.compile(f, backend="gint")
    for s in (0.5, 0.7, 0.9, 1.25):
        torch.testing.assert_close(g(x, s), f(x, s))
    assert not counters["graph_break"], dict(counters["graph_break"])
    before = gint.counters()["launches"]
    g(x, 2.5)
    assert gint.counters()["launches"] > before  # ran in gint, not eagerly


# ------------------------------------------------- 11. threads under the simulator


def test_compiled_functions_run_from_several_threads(target):
    g = compiled(lambda a: a * 2 + 1)
    errors = []

    def work(seed):
        try:
            gen = torch.Generator(device=target.device).manual_seed(seed)
            for _ in range(3):
                a = torch.randn(target.numel, device=target.device, generator=gen)
                torch.testing.assert_close(g(a), a * 2 + 1)
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    g(torch.randn(8, device=target.device))  # compiled before the threads start
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ------------------------------------- 12. a graph gint fails on runs eagerly, with a warning


def test_vit_at_a_second_image_size(target):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=16, patch_size=8
    )
    model = transformers.ViTModel(config).eval().to(target.device)
    torch._dynamo.reset()
    fast = torch.compile(model, backend="gint")
    failed, direct = gint.counters()["graphs_failed"], gint.counters()["graphs_without_aot"]
    for size in (16, 8):  # 5 tokens, then 2 (a recompile with dynamic sizes)
        pixels = torch.randn(1, 3, size, size, device=target.device)
        with torch.no_grad():
            got = fast(pixels, interpolate_pos_encoding=True).last_hidden_state
            want = model(pixels, interpolate_pos_encoding=True).last_hidden_state
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert gint.counters()["graphs_failed"] == failed  # compiled by gint, not run eagerly after a failure
    assert gint.counters()["graphs_without_aot"] >= direct + 2  # both traced by make_fx (symbolic interpolate)


def test_a_graph_gint_fails_on_runs_eagerly_with_a_warning_and_a_reason(target, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(backend.GraphPartitioner, "plan", broken)
    x = torch.randn(target.numel, device=target.device)
    for inference in (True, False):
        torch._dynamo.reset()
        y = x.clone().requires_grad_(not inference)
        with warnings.catch_warnings(record=True) as caught, recording(Report()) as report:
            warnings.simplefilter("always")
            out = torch.compile(lambda t: (t * 2).sin(), backend="gint")(y)
        torch.testing.assert_close(out, (y * 2).sin())
        if not inference:
            out.sum().backward()
            torch.testing.assert_close(y.grad, 2 * (y * 2).cos().detach())
        assert any("planted failure" in f.reason for f in report.fallback), report
        assert report.coverage < 1.0
    assert gint.counters()["graphs_failed"] >= 2


def test_a_layout_the_kernel_cannot_take_runs_the_subgraph_eagerly(target):
    """Reduced dims that are one run at compile time but not for a later call's strides."""
    torch._dynamo.reset()
    g = torch.compile(lambda x: x.sum(dim=(1, 2)) * 2, backend="gint", dynamic=False)
    x = torch.randn(3, 4, 5, device=target.device)
    torch.testing.assert_close(g(x), x.sum(dim=(1, 2)) * 2)
    subgraph = next(iter(_subgraphs(g, x)))
    odd = torch.randn(3, 5, 4, device=target.device).transpose(1, 2)  # same shape, dims 1, 2 swapped in memory
    with pytest.warns(UserWarning, match="runs eagerly"):
        got = subgraph(odd)
    torch.testing.assert_close(got[0], odd.sum(dim=(1, 2)) * 2)


def _subgraphs(fn, *args):
    report = gint.explain(fn, *args)
    return [s.callable for s in report.subgraphs]


# --------------------------------------------------------- 13. no unverified launch


def test_words_cannot_be_edited_after_verification():
    executable = executor.prepare(Assembler("x", "y").load(0).store(1).halt().program())
    with pytest.raises(TypeError):
        executable.words[2] = 0
    assert isinstance(executable.depths, tuple)


def test_a_launch_checks_its_layout_was_planned_for_these_tensors(target):
    executable = executor.prepare(Assembler("x", "y").load(0).addi(1.0).store(1).halt().program())
    x, y = torch.randn(8, device=target.device), torch.empty(8, device=target.device)
    layout = executable.plan([x, y])
    executable.launch(layout, [x, y])
    torch.testing.assert_close(y, x + 1)
    big = torch.randn(1000, device=target.device)
    with pytest.raises(executor.ExecutionError, match="planned for other tensors"):
        executable.launch(layout, [torch.randn(4, device=target.device), torch.empty(4, device=target.device)])
    with pytest.raises(executor.ExecutionError, match="planned for other tensors"):
        executable.launch(executable.plan([big, torch.empty_like(big)]), [x, y])


def test_program_operands_must_be_integers():
    with pytest.raises(TypeError, match="pair of integers"):
        Program(((isa.BY_NAME["CONST"].opcode, 1.9), (0, 0)), ("x",))
    with pytest.raises(TypeError, match="pair of integers"):
        Program(((1,), (0, 0)), ("x",))
    with pytest.raises(TypeError, match="slot names"):
        Program(((0, 0),), (1,))


# ------------------------------------------------------------- clear error messages


def test_the_branch_rule_names_parked_registers_when_they_are_the_cause():
    asm = Assembler("x", "out").load(0).park().nextchunk(1).unpark().store(1).halt()
    with pytest.raises(VerificationError, match="parked in the math registers"):
        asm.program()
    asm = Assembler("x", "out").load(0).load(0).nextchunk(0).store(1).halt()
    with pytest.raises(VerificationError, match="stack depth 2 here but 0 at the target"):
        asm.program()


def test_explain_reports_float64_and_complex_inputs_as_eager():
    x64 = torch.randn(8, dtype=torch.float64)
    xc = torch.randn(8, dtype=torch.complex64)
    report = gint.explain(lambda a, b, c: (a * 2 + 1, b * 2, c.float() * 3), x64, xc, torch.randn(8))
    text = str(report)
    assert "float64" in text and "complex64" in text, text


@bytecode
def _copy(x, out):
    out.store(x.load())


def test_run_errors_say_what_was_wrong_and_what_to_do(target):
    x = torch.randn(4, 3, device=target.device)
    with pytest.raises(executor.ExecutionError, match="not the full shape"):
        _copy(x, torch.empty(4, 1, device=target.device))
    with pytest.raises(executor.ExecutionError, match="dtype torch.float64 is not supported"):
        _copy(x.double(), torch.empty(4, 3, device=target.device))
    with pytest.raises(executor.ExecutionError, match="takes 2 tensor"):
        _copy(x)
