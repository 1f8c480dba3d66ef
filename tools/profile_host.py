"""Where the host's time goes in a gint call of a transformers model (cProfile).

``python tools/profile_host.py bert [--train] [--way gint|graph_eager|eager]`` on a GPU:
after warm-up, 10 calls under cProfile; prints the wall time per call and the top
functions by own time and by cumulative time, per call. A host-bound model's time is
spent here, not in its kernels (``tools/profile_floor.py`` has the kernels)."""

import cProfile
import gc
import pstats
import sys
import time

import torch

from profile_floor import forward_calls, training_calls  # this script's directory is on sys.path

from gint.bench import models as M
from gint.conductor import register_backend

CALLS = 10


def main():
    register_backend()
    args = sys.argv[1:]
    names = [a for a in args if not a.startswith("--") and a not in ("gint", "graph_eager", "eager")] or ["bert"]
    ways = [a for a in args if a in ("gint", "graph_eager", "eager")] or ["gint"]
    train = "--train" in args
    for name in names:
        for way in ways:
            torch._dynamo.reset()
            model, calls = (training_calls if train else forward_calls)(name)
            fn = {"eager": model, "gint": torch.compile(model, backend="gint")}.get(way)
            call = calls(fn if fn is not None else M.all_eager(torch.compile(model, backend="gint")))

            for _ in range(4):
                call()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(CALLS):
                call()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - start) / CALLS * 1e3
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(CALLS):
                call()
            torch.cuda.synchronize()
            profiler.disable()
            print(f"== {name} {'train' if train else 'bf16'} {way}: {wall:.2f} ms wall per call")
            stats = pstats.Stats(profiler)
            rows = [(k, v) for k, v in stats.stats.items()]
            for label, index in (("own", 2), ("cumulative", 3)):
                print(f"   top by {label} time (ms per call, calls per call):")
                for (file, line, func), v in sorted(rows, key=lambda kv: -kv[1][index])[:22]:
                    where = f"{file.split('site-packages/')[-1].split('/work/')[-1]}:{line}"
                    print(f"   {v[index] / CALLS * 1e3:8.3f} {v[1] / CALLS:7.0f}  {func[:40]:40s} {where[-70:]}")
            if way == "gint":
                decisions()


def decisions():
    """Every live compiled subgraph's per-signature choice, with each way's host and
    device time (``gint.conductor.choice``), the slowest device time first."""
    from gint.conductor.subgraph import GintCompiledSubgraph

    rows = []
    for obj in gc.get_objects():
        if isinstance(obj, GintCompiledSubgraph):
            for decision in obj.decisions.values():
                t = decision.timing
                if t is not None:
                    rows.append((max(t.gint_device, t.eager_device), decision.use_gint, t, obj.ops))
    print(f"   {len(rows)} timed signatures: way, gint host/device, eager host/device (us), ops")
    for _, use_gint, t, ops in sorted(rows, key=lambda r: -r[0])[:40]:
        names = ",".join(op.split(".")[1] if op.startswith("aten.") else op for op in ops)
        print(f"   {'gint ' if use_gint else 'eager'} {t.gint_host:6.1f}/{t.gint_device:7.1f}  "
              f"{t.eager_host:6.1f}/{t.eager_device:7.1f}  {names[:90]}")


if __name__ == "__main__":
    main()
