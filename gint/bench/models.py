"""Real models: transformers' GPT-2, Llama and BERT through eager, Inductor and gint.

``python -m gint.bench --models [gpt2,llama,bert]``. Random init, 4 layers; inference on
batch 8 x 512 tokens in bf16 and fp32, one fp32 training step (forward, LM loss,
backward) on batch 4 x 256. For each model, in one run: wall time per call
(synchronized, contenders timed in turns, so host overhead counts as users see it),
first-call time (compile included), the error against eager, and gint's coverage.
Two gint contenders: ``gint`` as users get it (a subgraph eager runs faster runs
eagerly, ``gint.conductor.choice``) and ``gint_kernel`` (every subgraph in gint:
the kernel's own speed). The per-subgraph table lists every gint subgraph one bf16
forward calls, per input signature: calls per forward, the kernel's and eager's device
time per call, bytes moved, fraction of the device copy, which way runs and why, ops,
shapes and strides, sorted by the time it costs a forward. That table is how a layout
or an op that falls off the fast path shows up.

``tiny=True`` builds 1-layer, 32-wide models on a few tokens: what the CPU machine
runs under the simulator (tests/test_bench_models.py), with no timing.
Needs transformers (the ``bench`` extra).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

MODELS = ("gpt2", "llama", "bert")
FULL = {"layers": 4, "batch": 8, "seq": 512, "train_batch": 4, "train_seq": 256}
TINY = {"layers": 1, "batch": 1, "seq": 8, "train_batch": 1, "train_seq": 8}
TABLE_ROWS = 25


def build(name: str, tiny: bool = False) -> torch.nn.Module:
    """The model ``name``, random init, no dropout (so gint and eager gradients compare)."""
    import transformers as tf

    torch.manual_seed(0)
    layers = (TINY if tiny else FULL)["layers"]
    if name == "gpt2":
        width, heads = (32, 2) if tiny else (768, 12)
        config = tf.GPT2Config(
            n_embd=width, n_head=heads, n_layer=layers, vocab_size=128 if tiny else 50257,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )
        return tf.GPT2LMHeadModel(config)
    if name == "llama":
        width, mlp, heads = (32, 64, 2) if tiny else (1024, 2816, 16)
        config = tf.LlamaConfig(
            hidden_size=width, intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=heads, vocab_size=128 if tiny else 32000, max_position_embeddings=2048,
        )
        return tf.LlamaForCausalLM(config)
    if name == "bert":
        width, mlp, heads = (32, 64, 2) if tiny else (768, 3072, 12)
        config = tf.BertConfig(
            hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp,
            vocab_size=128 if tiny else 30522, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        return tf.BertForMaskedLM(config)
    raise ValueError(f"unknown model {name!r}: one of {', '.join(MODELS)}")


def tokens(model: torch.nn.Module, batch: int, seq: int, device) -> torch.Tensor:
    return torch.randint(0, model.config.vocab_size, (batch, seq), device=device)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    return ((got - want).norm() / want.norm().clamp_min(1e-30)).item()


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def first_call_ms(fn: Callable[[], object], device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return round((time.perf_counter() - start) * 1e3, 1)


# more gint contenders by name: their backend options (``--balance`` adds gint_balanced)
CONTENDER_OPTIONS: dict[str, dict] = {}


def contenders(model: torch.nn.Module, with_inductor: bool) -> dict[str, Callable]:
    """``gint`` as users get it; ``gint_kernel``: every subgraph in gint;
    ``graph_eager``: gint's compiled graph with every subgraph run eagerly (what the graph
    torch.compile hands a backend costs without gint's kernel: the floor that the choice
    between gint and eager can reach); ``inductor``."""
    torch._dynamo.reset()
    fns = {
        "gint": torch.compile(model, backend="gint"),
        "gint_kernel": torch.compile(model, backend="gint", options={"eager_when_faster": False}),
        "graph_eager": all_eager(torch.compile(model, backend="gint")),
        **{name: torch.compile(model, backend="gint", options=opts) for name, opts in CONTENDER_OPTIONS.items()},
    }
    if with_inductor:
        fns["inductor"] = torch.compile(model)
    return fns


def all_eager(fn: Callable) -> Callable:
    """``fn`` (a gint-compiled callable) whose subgraphs all decide, on their first call,
    to run eagerly; later calls keep those decisions."""
    from gint.conductor import choice

    def forced(run_gint, run_eager):
        return choice.Timing.flat(float("inf"), 0.0), None, run_eager()

    def run(*args, **kwargs):
        previous, choice.timer = choice.timer, forced
        try:
            return fn(*args, **kwargs)
        finally:
            choice.timer = previous

    return run


def inference(name: str, dtype: torch.dtype, device="cuda", tiny: bool = False) -> dict:
    size = TINY if tiny else FULL
    model = build(name, tiny).to(device, dtype).eval()
    ids = tokens(model, size["batch"], size["seq"], device)
    timed = torch.device(device).type == "cuda"
    compiled = contenders(model, with_inductor=timed)
    row: dict = {}
    with torch.no_grad():
        want = model(ids).logits
        for backend, fn in compiled.items():
            row[f"{backend}_first_call_ms"] = first_call_ms(lambda fn=fn: fn(ids), device)
            row[f"{backend}_rel_error"] = relative_error(fn(ids).logits, want)
        if timed:
            from gint.bench.timing import interleaved_wall_us

            calls = {"eager": lambda: model(ids), **{k: (lambda f=f: f(ids)) for k, f in compiled.items()}}
            walls = interleaved_wall_us(calls, rounds=3, reps=20)
            row.update({f"{k}_ms": round(v / 1e3, 3) for k, v in walls.items()})
            row["speedup_vs_eager"] = round(walls["eager"] / walls["gint"], 3)
            row["kernel_speedup_vs_eager"] = round(walls["eager"] / walls["gint_kernel"], 3)
            row.update({f"{k}_speedup_vs_eager": round(walls["eager"] / walls[k], 3) for k in CONTENDER_OPTIONS})
            row["gint_vs_inductor"] = round(walls["gint"] / walls["inductor"], 3)
            row["graph_eager_vs_eager"] = round(walls["eager"] / walls["graph_eager"], 3)
    return row


def training_step(fn: Callable, ids: torch.Tensor, params: list) -> Callable[[], None]:
    """One training step of ``fn`` (a model or its compiled form): gradients cleared,
    forward with the LM loss, backward."""

    def run():
        for p in params:
            p.grad = None
        fn(ids, labels=ids).loss.backward()

    return run


def training(name: str, device="cuda", tiny: bool = False) -> dict:
    """One fp32 step: forward with the LM loss, backward (gradients cleared each step)."""
    size = TINY if tiny else FULL
    model = build(name, tiny).to(device).train()
    ids = tokens(model, size["train_batch"], size["train_seq"], device)
    params = [p for p in model.parameters() if p.requires_grad]

    def step(fn):
        return training_step(fn, ids, params)

    step(model)()
    want = [p.grad.clone() for p in params]
    timed = torch.device(device).type == "cuda"
    compiled = contenders(model, with_inductor=timed)
    row: dict = {}
    for backend, fn in compiled.items():
        row[f"{backend}_first_call_ms"] = first_call_ms(step(fn), device)
        step(fn)()
        num = math.sqrt(sum(((p.grad - w).double().norm() ** 2).item() for p, w in zip(params, want)))
        den = math.sqrt(sum((w.double().norm() ** 2).item() for w in want))
        row[f"{backend}_grad_rel_error"] = num / max(den, 1e-30)
    if timed:
        from gint.bench.timing import interleaved_wall_us

        walls = interleaved_wall_us({"eager": step(model), **{k: step(f) for k, f in compiled.items()}}, rounds=3, reps=10)
        row.update({f"{k}_ms": round(v / 1e3, 3) for k, v in walls.items()})
        row["speedup_vs_eager"] = round(walls["eager"] / walls["gint"], 3)
        row["kernel_speedup_vs_eager"] = round(walls["eager"] / walls["gint_kernel"], 3)
        row.update({f"{k}_speedup_vs_eager": round(walls["eager"] / walls[k], 3) for k in CONTENDER_OPTIONS})
        row["graph_eager_vs_eager"] = round(walls["eager"] / walls["graph_eager"], 3)
    return row


@contextmanager
def counting_subgraph_calls():
    """Count every gint subgraph call by (subgraph, input shapes/strides/dtypes)."""
    from gint.conductor.subgraph import GintCompiledSubgraph

    calls: dict[tuple, list] = {}
    original = GintCompiledSubgraph.__call__

    def counted(self, *inputs):
        key = (id(self), tuple((tuple(t.shape), tuple(t.stride()), t.dtype) for t in inputs))
        entry = calls.setdefault(key, [self, 0])
        entry[1] += 1
        return original(self, *inputs)

    GintCompiledSubgraph.__call__ = counted
    try:
        yield calls
    finally:
        GintCompiledSubgraph.__call__ = original


def random_like(shape, stride, dtype, device) -> torch.Tensor:
    """A random tensor with exactly this shape and stride (broadcast strides included)."""
    extent = 1 + sum((n - 1) * s for n, s in zip(shape, stride) if n > 0)
    if dtype == torch.bool:
        base = torch.rand(extent, device=device) > 0.5
    elif dtype.is_floating_point:
        base = torch.randn(extent, device=device).to(dtype)
    else:
        base = torch.randint(0, 64, (extent,), device=device, dtype=dtype)
    return base.as_strided(shape, stride)


def distinct_bytes(shape, stride, dtype) -> int:
    return math.prod(n for n, s in zip(shape, stride) if s != 0) * torch.empty((), dtype=dtype).element_size()


def subgraph_table(name: str, dtype: torch.dtype, copy_gbps: float | None, device="cuda", tiny: bool = False) -> dict:
    """gint's coverage on one forward and its subgraphs per input signature, the costliest
    (per forward) first; device times only on a GPU."""
    import gint

    size = TINY if tiny else FULL
    model = build(name, tiny).to(device, dtype).eval()
    ids = tokens(model, size["batch"], size["seq"], device)
    torch._dynamo.reset()
    with torch.no_grad(), counting_subgraph_calls() as calls:
        report = gint.explain(model, ids)
    timed = torch.device(device).type == "cuda"
    rows = []
    for (_, key), (sub, count) in calls.items():
        inputs = [random_like(shape, stride, dt, device) for shape, stride, dt in key]
        plan = sub._plan_or_eager(inputs)
        outs = sub.eager(*inputs)
        moved = sum(distinct_bytes(*k) for k in key) + sum(o.numel() * o.element_size() for o in outs)
        decision = sub.decisions.get(key)
        row = {
            "calls": count,
            "runs": "eager (layout)" if not isinstance(plan, tuple) else str(decision or "gint"),
            "bytes": moved,
            "ops": list(sub.ops),
            "shapes": [list(k[0]) for k in key],
            "strides": [list(k[1]) for k in key],
            "dtypes": [str(k[2]).removeprefix("torch.") for k in key],
        }
        if timed:
            from gint.bench.timing import device_time_us

            kernel_us = device_time_us(lambda: sub._run(plan, inputs), warmup=3, reps=15) if isinstance(plan, tuple) else None
            eager_us = device_time_us(lambda: sub.eager(*inputs), warmup=3, reps=15)
            chosen = kernel_us if kernel_us is not None and (decision is None or decision.use_gint) else eager_us
            row.update({
                "kernel_us": None if kernel_us is None else round(kernel_us, 2),
                "eager_us": round(eager_us, 2),
                "us_per_forward": round(chosen * count, 1),
                "kernel_copy_fraction": None if kernel_us is None else round(moved / kernel_us / 1e3 / copy_gbps, 3),
            })
        rows.append(row)
    rows.sort(key=lambda r: (-r.get("us_per_forward", 0), -r["bytes"] * r["calls"]))
    return {
        "coverage": round(report.coverage, 3),
        "subgraphs": len(report.subgraphs),
        "signatures": len(rows),
        "declined": sum(1 for r in rows if r["runs"].startswith("eager")),
        "fallback_ops": sorted({fb.op for fb in report.fallback}),
        "table": rows[:TABLE_ROWS],
    }


def run(
    names: list[str], copy_gbps: float | None, progress, save: Callable[[dict], None] | None = None, tiny: bool = False
) -> dict:
    """Every figure for each model in ``names``; ``save(results)`` after each model.
    ``tiny``: the tiny configurations on the CPU under the simulator (no times): fp32
    inference against eager, and the bf16 forward's subgraphs and coverage."""
    results: dict = {}
    for name in progress(names):
        entry: dict = {}
        results[name] = entry
        if tiny:
            entry["inference_fp32"] = inference(name, torch.float32, device="cpu", tiny=True)
            entry["subgraphs_bf16"] = subgraph_table(name, torch.bfloat16, None, device="cpu", tiny=True)
            continue
        for tag, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            entry[f"inference_{tag}"] = inference(name, dtype)
            if save:
                save(results)
        entry["training_fp32"] = training(name)
        entry["subgraphs_bf16"] = subgraph_table(name, torch.bfloat16, copy_gbps)
        if save:
            save(results)
    return results


# Errors against eager above which a backend's timings describe wrong results (good runs on the
# H100: bf16 logits <= 0.011 for every backend, Inductor's included; fp32 and gradients ~1e-6).
ERROR_LIMITS = {"inference_bf16": 0.05, "inference_fp32": 1e-4, "training_fp32": 1e-4}


def wrong_results(results: dict) -> list[str]:
    """One line per model, mode and backend whose result is off eager's by more than
    ``ERROR_LIMITS`` allows (a NaN error counts as wrong)."""
    lines = []
    for name, entry in results.items():
        for mode, limit in ERROR_LIMITS.items():
            for key, error in (entry.get(mode) or {}).items():
                if key.endswith("rel_error") and not error <= limit:
                    backend = key.removesuffix("_rel_error").removesuffix("_grad")
                    lines.append(f"WRONG RESULTS: {name} {mode} {backend}: relative error {error:.3g} > {limit:g}")
    return lines


def summary(results: dict) -> list[str]:
    lines = [
        f"{'model / mode':<24} {'eager ms':>9} {'ind. ms':>9} {'gint ms':>9} {'kernel ms':>9} {'graph ms':>9} "
        f"{'x eager':>8} {'coverage':>8}"
    ]
    for name, entry in results.items():
        table = entry.get("subgraphs_bf16", {})
        coverage = table.get("coverage", float("nan"))
        for mode in ("inference_bf16", "inference_fp32", "training_fp32"):
            r = entry.get(mode)
            if r and "eager_ms" in r:
                lines.append(
                    f"{name + ' ' + mode:<24} {r['eager_ms']:>9.2f} {r.get('inductor_ms', float('nan')):>9.2f} "
                    f"{r['gint_ms']:>9.2f} {r['gint_kernel_ms']:>9.2f} {r.get('graph_eager_ms', float('nan')):>9.2f} "
                    f"{r['speedup_vs_eager']:>8.2f} {coverage:>8.2f}"
                )
        if table:
            lines.append(f"    bf16 forward: {table['signatures']} subgraph signatures, {table['declined']} run eagerly")
        for r in table.get("table", [])[:5]:
            lines.append(
                f"    {r.get('us_per_forward', 0):>8.1f} us/fwd {r['calls']:>3}x kernel {r.get('kernel_us')} eager "
                f"{r.get('eager_us')} [{r['runs']}] {','.join(r['ops'][:4])} {r['shapes'][0]} {r['strides'][0]}"
            )
    return lines + wrong_results(results)
