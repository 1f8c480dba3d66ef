"""Compiled functions called from several threads at once (issue 31), every element
checked against eager: first calls racing through dynamo's compile, cached calls, new
shapes and layouts arriving while other threads call, and row programs. The simulator
runs the kernel in Python threads, so host-code races show here too; on a GPU
``python -m gint.conductor.stress`` runs the same rounds by the hundred, also on a
stream per thread, and under ``backend="eager"``/``"inductor"`` for comparison."""

import pytest
import torch

import gint
from gint.conductor import register_backend, stress

register_backend()


@pytest.mark.parametrize("scenario", stress.SCENARIOS)
def test_threads_calling_compiled_functions_get_eagers_results(target, scenario):
    numel = 300 if target.name == "sim" else (1 << 20) + 3
    iterations = 2 if target.name == "sim" else 20
    failed = gint.counters()["graphs_failed"]
    launches = gint.counters()["launches"]
    results = stress.run(["gint"], [scenario], [4], iterations, target.device, numel, streams=False, progress=lambda _: None)
    outcome = results[("gint", scenario, 4)]
    assert outcome.calls == iterations * 4 * 2
    assert outcome.clean, stress.summary_line("gint", scenario, 4, outcome)
    assert gint.counters()["graphs_failed"] == failed
    assert gint.counters()["launches"] - launches >= outcome.calls  # gint ran them, not eager


@pytest.mark.gpu
def test_threads_on_streams_of_their_own(target):
    if target.name == "sim":
        pytest.skip("CUDA streams")
    results = stress.run(["gint"], ["shapes", "reduce"], [4], 20, target.device, (1 << 20) + 3, streams=True, progress=lambda _: None)
    for key, outcome in results.items():
        assert outcome.clean, stress.summary_line(*key, outcome)


def test_a_wrong_element_is_reported():
    got = torch.zeros(5)
    want = got.clone()
    want[3] = 1
    problem = stress._compare(got, want, "case")
    assert "1 of 5 elements differ" in problem and "(3,)" in problem
    assert stress._compare(want, want, "case") is None


def test_another_threads_fx_trace_does_not_fail_this_threads_calls(target):
    """Issue 31's cause (H100, torch 2.11): dynamo refused a compiled call while ANY
    thread traced with FX (a process-wide flag); gint's compile traces with make_fx. Here
    another thread runs a plain torch.fx.symbolic_trace that takes a while."""
    import threading
    import time

    from gint.conductor import threads

    threads.install()
    fast = torch.compile(lambda x: x * 2 + 1, backend="gint")
    x = torch.randn(64, device=target.device)
    fast(x)  # compiled before the trace starts
    started, release = threading.Event(), threading.Event()

    class Slow(torch.nn.Module):
        def forward(self, t):
            started.set()
            release.wait(30)
            return t + 1

    tracer = threading.Thread(target=lambda: torch.fx.symbolic_trace(Slow()))
    tracer.start()
    try:
        assert started.wait(30)
        assert torch.fx._symbolic_trace._is_fx_tracing_flag  # the other thread is tracing now
        torch.testing.assert_close(fast(x), x * 2 + 1)
    finally:
        release.set()
        tracer.join()
    # inside a trace in this thread, dynamo's check still fires
    with pytest.raises(RuntimeError, match="symbolically trace a dynamo-optimized function"):
        torch.fx.symbolic_trace(lambda t: fast(t))
