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
