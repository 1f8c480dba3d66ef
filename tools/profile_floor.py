"""Why gint's graph with every subgraph eager ("graph_eager") is slower than eager:
kernel tables of eager vs graph_eager vs gint for a transformers model.

``python tools/profile_floor.py bert [llama ...]`` on a GPU: a bf16 forward per way;
``--train``: one fp32 training step (batch 4 x 256, the models benchmark's). Per way:
the CUDA kernels (torch.profiler) summed over 5 calls, top 14 by device time, the
kernel count, and the wall time per call; then the kernels whose device time differs
most between eager and graph_eager (what the compiled graph itself adds)."""

import sys
import time
from collections import Counter

import torch
from torch.profiler import ProfilerActivity, profile

from gint.bench import models as M
from gint.conductor import register_backend

REPS = 5


def kernels(call) -> Counter:
    """Device microseconds per call of each CUDA kernel name."""
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(REPS):
        call()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / REPS * 1e6
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(REPS):
            call()
        torch.cuda.synchronize()
    times, counts = Counter(), Counter()
    for e in prof.key_averages():
        if e.device_time_total > 0 and e.device_type.name == "CUDA":
            times[e.key] += e.device_time_total / REPS
            counts[e.key] += e.count / REPS
    return times, counts, wall


def table(label, times, counts, wall):
    print(f"== {label}: {sum(times.values()):.0f} us device, {sum(counts.values()):.0f} kernels, "
          f"{wall:.0f} us wall per call")
    for key, us in times.most_common(14):
        print(f"   {us:9.1f} us {counts[key]:6.1f}x  {key[:110]}")


def difference(a, b, label):
    keys = sorted(set(a) | set(b), key=lambda k: -abs(b[k] - a[k]))
    print(f"== {label}: largest differences (us per call, kernels)")
    for key in keys[:16]:
        print(f"   {a[key]:9.1f} -> {b[key]:9.1f}  {key[:100]}")


def forward_calls(name):
    model = M.build(name, False).to("cuda", torch.bfloat16).eval()
    ids = M.tokens(model, 8, 512, "cuda")

    def way(fn):
        def call():
            with torch.no_grad():
                fn(ids)
        return call

    return model, way


def training_calls(name):
    model = M.build(name, False).to("cuda").train()
    ids = M.tokens(model, M.FULL["train_batch"], M.FULL["train_seq"], "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    return model, lambda fn: M.training_step(fn, ids, params)


def main():
    register_backend()
    args = sys.argv[1:]
    train = "--train" in args
    names = [a for a in args if not a.startswith("--")] or ["bert"]
    for name in names:
        torch._dynamo.reset()
        model, way = (training_calls if train else forward_calls)(name)
        mode = "train fp32" if train else "bf16"
        eager = kernels(way(model))
        table(f"{name} {mode} eager", *eager)
        floor = kernels(way(M.all_eager(torch.compile(model, backend="gint"))))
        table(f"{name} {mode} graph_eager", *floor)
        difference(eager[0], floor[0], f"{name} {mode} eager -> graph_eager")
        torch._dynamo.reset()
        gint = kernels(way(torch.compile(model, backend="gint")))
        table(f"{name} {mode} gint", *gint)
        difference(floor[0], gint[0], f"{name} {mode} graph_eager -> gint")


if __name__ == "__main__":
    main()
