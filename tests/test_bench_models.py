"""The real-model benchmark's code paths on tiny models (issue 30): every figure it
reports except the times, under the simulator; ``python -m gint.bench --models`` on a
GPU adds the times."""

import pytest
import torch

from gint.bench import models
from gint.conductor import register_backend

pytest.importorskip("transformers")
register_backend()


@pytest.mark.parametrize("name", models.MODELS)
def test_tiny_models_match_eager_in_the_bench(target, name):
    if target.name != "sim":
        pytest.skip("the GPU runs the full bench")
    row = models.inference(name, torch.float32, device=target.device, tiny=True)
    assert row["gint_rel_error"] < 1e-4 and row["gint_kernel_rel_error"] < 1e-4
    assert row["graph_eager_rel_error"] < 1e-4
    table = models.subgraph_table(name, torch.float32, None, device=target.device, tiny=True)
    assert table["subgraphs"] >= 1 and table["signatures"] >= 1 and 0 < table["coverage"] <= 1
    first = table["table"][0]
    assert first["calls"] >= 1 and first["bytes"] > 0 and first["ops"] and first["runs"]


@pytest.mark.gpu
def test_a_tiny_training_step_matches_eagers_gradients(target):
    if target.name == "sim":
        pytest.skip("80 s under the simulator; training graphs are tested in test_conductor")
    row = models.training("gpt2", device=target.device, tiny=True)
    assert row["gint_grad_rel_error"] < 1e-4 and row["gint_kernel_grad_rel_error"] < 1e-4


def test_the_graph_eager_contender_runs_no_kernel(target):
    """``graph_eager`` is gint's compiled graph with every subgraph handed to eager."""
    import gint

    model = models.build("gpt2", tiny=True).to(target.device).eval()
    ids = models.tokens(model, 1, 8, target.device)
    torch._dynamo.reset()
    fn = models.all_eager(torch.compile(model, backend="gint"))
    with torch.no_grad():
        want = model(ids).logits
        declined = gint.counters()["subgraphs_declined"]
        launches = gint.counters()["launches"]
        got = fn(ids).logits
        got = fn(ids).logits
    assert gint.counters()["launches"] == launches
    assert gint.counters()["subgraphs_declined"] > declined
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_quick_models_run_on_the_cpu(target):
    """``python -m gint.bench --models --quick`` without a GPU: tiny models, no times."""
    if target.name != "sim":
        pytest.skip("the GPU runs the full bench")
    results = models.run(["llama"], None, lambda items: items, tiny=True)
    row, table = results["llama"]["inference_fp32"], results["llama"]["subgraphs_bf16"]
    assert row["gint_rel_error"] < 1e-4 and "gint_ms" not in row
    assert 0 < table["coverage"] <= 1 and table["table"]


def test_the_models_plot(tmp_path):
    from gint.bench import plots

    row = {"eager_ms": 2.0, "gint_ms": 4.0, "gint_kernel_ms": 8.0, "inductor_ms": 1.0}
    results = {"gpt2": {"inference_bf16": row, "training_fp32": {**row, "graph_eager_ms": 2.5}}, "bert": {}}
    path = tmp_path / "models.png"
    plots.models(results, "test", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_says_when_a_backend_got_wrong_results():
    """Timings of wrong results are no timings: the summary names every such row (on the
    H100 a broken kernel build once printed a plausible table with errors of ~1)."""
    good = {"eager_ms": 1.0, "gint_ms": 1.0, "gint_kernel_ms": 1.0, "speedup_vs_eager": 1.0}
    results = {
        "gpt2": {
            "inference_bf16": {**good, "gint_rel_error": 0.0085, "inductor_rel_error": 0.0097},
            "inference_fp32": {**good, "gint_rel_error": 1.31, "graph_eager_rel_error": 1e-6},
            "training_fp32": {**good, "gint_kernel_grad_rel_error": float("nan")},
        }
    }
    wrong = [line for line in models.summary(results) if line.startswith("WRONG")]
    assert wrong == [
        "WRONG RESULTS: gpt2 inference_fp32 gint: relative error 1.31 > 0.0001",
        "WRONG RESULTS: gpt2 training_fp32 gint_kernel: relative error nan > 0.0001",
    ]
