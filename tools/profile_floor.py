"""Why gint's graph with every subgraph eager ("graph_eager") is slower than eager:
kernel tables of eager vs graph_eager vs gint for a transformers model (bf16 forward).

``python tools/profile_floor.py bert [llama ...]`` on a GPU: per way, the CUDA kernels
(torch.profiler) summed over 5 forwards, top 14 by device time, and the kernel count."""

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from gint.bench import models as M
from gint.conductor import register_backend


def table(fn, ids, label):
    for _ in range(3):
        fn(ids)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            fn(ids)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0 and e.device_type.name == "CUDA"]
    total = sum(e.device_time_total for e in events) / 5
    count = sum(e.count for e in events) / 5
    print(f"== {label}: {total:.0f} us device per forward, {count:.0f} kernels per forward")
    for e in sorted(events, key=lambda e: -e.device_time_total)[:14]:
        print(f"   {e.device_time_total / 5:9.1f} us {e.count // 5:4d}x  {e.key[:110]}")


def main():
    register_backend()
    for name in sys.argv[1:] or ["bert"]:
        torch._dynamo.reset()
        model = M.build(name, False).to("cuda", torch.bfloat16).eval()
        ids = M.tokens(model, 8, 512, "cuda")
        with torch.no_grad():
            table(model, ids, f"{name} eager")
            table(M.all_eager(torch.compile(model, backend="gint")), ids, f"{name} graph_eager")
            torch._dynamo.reset()
            table(torch.compile(model, backend="gint"), ids, f"{name} gint")


if __name__ == "__main__":
    main()
