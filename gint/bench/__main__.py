"""``python -m gint.bench``: gint vs eager vs TorchInductor vs the device copy, on this GPU.

Default: the whole suite (streaming pointwise chains, small calls, compile latency,
kernel resources, launch overhead, row/column reductions). ``--quick``: a small subset. ``--core``: launch
overhead and copy/add bandwidth only. ``--variants``: kernel-config ablation.
``--latency``: cold kernel build, new process, new graph, new shape, CUDA graphs.
``--reductions``: rmsnorm, softmax, layer_norm, row and column sums/maxima only.
``--layouts``: one pointwise chain over the layouts real models produce (head-major
views, broadcast tables, sliced halves, rotary). ``--models [gpt2,llama,bert]``:
transformers' models per forward and training step, with a per-subgraph table
(``gint.bench.models``; needs transformers).
Writes ``bench-<date>.json`` (device, versions, date, every figure) and PNG plots to
``--out`` (default ``reports/``), and prints a summary table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def environment() -> dict:
    import numba
    import numba_cuda
    import numpy
    import torch

    from gint.kernel.codegen import source_digest

    props = torch.cuda.get_device_properties(0)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": props.name,
        "sm_count": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": getattr(__import__("triton"), "__version__", None) if _has("triton") else None,
        "numba": numba.__version__,
        "numba_cuda": numba_cuda.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "kernel_digest": source_digest(),
        "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
    }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def progress(items):
    """A minimal progress bar on stderr."""
    items = list(items)
    start = time.time()
    for i, item in enumerate(items):
        done = int(30 * i / max(len(items), 1))
        sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {i}/{len(items)} {time.time() - start:5.0f}s")
        sys.stderr.flush()
        yield item
    sys.stderr.write(f"\r[{'#' * 30}] {len(items)}/{len(items)} {time.time() - start:5.0f}s\n")


def kernel_figures() -> dict:
    from gint.host.launcher import launcher_for
    from gint.kernel.resources import measure

    launcher = launcher_for(0)
    figures = {
        "config": launcher.config.tag,
        "block": launcher.block,
        "blocks_per_sm": launcher.blocks_per_sm,
        "threads_per_sm": launcher.blocks_per_sm * launcher.block,
    }
    try:
        resources = measure(tuple(__import__("torch").cuda.get_device_capability(0)), launcher.config)
        figures.update({k: v for k, v in resources.as_dict().items() if k != "ptxas"})
    except (FileNotFoundError, RuntimeError) as error:
        figures["ptxas_error"] = str(error)
    return figures


def summary(report: dict) -> str:
    lines = []
    cases = report.get("streaming", []) + report.get("reductions", []) + report.get("layouts", [])
    if cases:
        lines.append(f"{'case':<34} {'gint us':>9} {'ind. us':>9} {'eager us':>9} {'gint/copy':>9} "
                     f"{'gint/ind':>8} {'x eager':>7}")
        for r in cases:
            lines.append(f"{r['case']:<34} {r['gint_us']:>9.1f} {r['inductor_us']:>9.1f} {r['eager_us']:>9.1f} "
                         f"{r['gint_bw_fraction']:>9.3f} {r['gint_vs_inductor']:>8.2f} {r['speedup_vs_eager']:>7.2f}")
    for key, value in report.get("latency", {}).items():
        lines.append(f"{key}: {json.dumps(value)}")
    for key in ("small_calls", "compile_latency", "kernel", "launch"):
        if key in report:
            lines.append(f"{key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in report[key].items()))
    return "\n".join(lines)


def _model_names(args, parser) -> list[str]:
    from gint.bench import models

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(models.MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(models.MODELS)}")
    return names


def _compile_times(args) -> int:
    """``--compile``: gint's own compile time per node on synthetic graphs (no kernel runs;
    without a GPU, under the simulator's target, in a fresh process if need be)."""
    import torch

    if not torch.cuda.is_available() and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        import subprocess

        argv = [sys.executable, "-m", "gint.bench", "--compile", "--sizes", args.sizes, "--out", args.out]
        return subprocess.run(argv, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}).returncode
    from gint.bench import compile_time
    from gint.conductor import register_backend

    register_backend()
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = compile_time.run(sizes, progress)
    machine = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine, "torch": torch.__version__, "compile": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-compile-{report['date'][:10]}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(compile_time.summary(rows)))
    print(f"wrote {path}")
    return 0


def _tiny_models(args, parser) -> int:
    """``--models --quick`` without a GPU: the tiny models under Numba's CUDA simulator
    (coverage, subgraphs, results against eager; no times). Runs in a fresh process when
    the simulator was not switched on before numba's import."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        import subprocess

        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
        argv = [sys.executable, "-m", "gint.bench", "--models", args.models, "--quick"]
        return subprocess.run(argv, env=env).returncode
    from gint.bench import models
    from gint.conductor import register_backend

    register_backend()
    results = models.run(_model_names(args, parser), None, progress, tiny=True)
    for name, entry in results.items():
        row, table = entry["inference_fp32"], entry["subgraphs_bf16"]
        print(f"{name} (tiny, simulator): fp32 error vs eager {row['gint_rel_error']:.2e}; bf16 forward: "
              f"coverage {table['coverage']:.2f}, {table['signatures']} subgraph signatures")
        for r in table["table"][:5]:
            print(f"    {r['calls']:>3}x {','.join(r['ops'][:5])} {r['shapes'][0]} {r['strides'][0]}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a small subset of the suite; with --models, tiny models (on the CPU without a GPU)")
    parser.add_argument("--core", action="store_true", help="launch overhead and copy/add bandwidth only")
    parser.add_argument("--variants", action="store_true", help="kernel config / block size ablation only")
    parser.add_argument("--latency", action="store_true", help="cold start, caches, new graphs and shapes, CUDA graphs")
    parser.add_argument("--reductions", action="store_true", help="row and column reductions only (8192 x 4096)")
    parser.add_argument("--layouts", action="store_true", help="a pointwise chain over real models' layouts")
    parser.add_argument("--models", nargs="?", const="gpt2,llama,bert", default=None, metavar="NAMES",
                        help="transformers models (comma-separated; default gpt2,llama,bert)")
    parser.add_argument("--balance", action="store_true",
                        help="with --models: also time gint with options={'graph_balance': True} (gint_balanced)")
    parser.add_argument("--compile", action="store_true",
                        help="gint's own compile time per node on synthetic chains (runs on the CPU too)")
    parser.add_argument("--sizes", default="100,1000,3000", help="with --compile: chain lengths")
    parser.add_argument("--no-cold-build", action="store_true", help="with --latency: skip the cold kernel build")
    parser.add_argument("--multi-row-tiles", action="store_true",
                        help="run gint on the kernel with KernelConfig.multi_row_tiles on (built from source)")
    parser.add_argument("--out", default="reports", help="folder for the JSON report and plots")
    args = parser.parse_args(argv)
    # Inductor's first-call figures are for graphs it has never compiled: no graph or
    # kernel cache left on disk by an earlier run on this machine
    fresh = tempfile.mkdtemp(prefix="gint-bench-inductor-")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", fresh)
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(fresh, "triton"))
    import torch

    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    if args.balance:
        from gint.bench import models

        models.CONTENDER_OPTIONS["gint_balanced"] = {"graph_balance": True}
    if args.models and args.quick and (simulated or not torch.cuda.is_available()):
        return _tiny_models(args, parser)
    if args.compile:
        return _compile_times(args)
    if not torch.cuda.is_available() or simulated:
        print("gint.bench needs a CUDA GPU (and NUMBA_ENABLE_CUDASIM unset); "
              "--models --quick runs tiny models on the CPU", file=sys.stderr)
        return 2
    from gint.bench import core, rows, suite
    from gint.conductor import register_backend

    register_backend()
    if args.multi_row_tiles:
        from dataclasses import replace

        from gint.host.launcher import KernelLauncher, use_launcher
        from gint.kernel.config import DEFAULT

        use_launcher(0, KernelLauncher(0, replace(DEFAULT, multi_row_tiles=True)))
    report: dict = {"environment": environment()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.models:
        from gint.bench import models

        names = _model_names(args, parser)
        report["copy_GBps"] = copy_gbps = suite.copy_bandwidth()
        report["kernel"] = kernel_figures()
        path = out / f"bench-models{'-rows' if args.multi_row_tiles else ''}-{report['environment']['date'][:10]}.json"

        def save(results):  # after each model: a run cut short keeps what it measured
            path.write_text(json.dumps({**report, "models": results}, indent=2) + "\n")

        report["models"] = results = models.run(names, copy_gbps, progress, save)
        save(results)
        from gint.bench import plots

        env = report["environment"]
        plots.models(results, f"transformers' models on {env['device']} ({env['date'][:10]}, torch {env['torch']})",
                     path.with_suffix(".png"))
        print("\n".join(models.summary(results)))
        print(f"wrote {path}")
        return 0
    if args.layouts:
        from gint.bench import layouts

        report["copy_GBps"] = copy_gbps = suite.copy_bandwidth()
        report["kernel"] = kernel_figures()
        report["layouts"] = layouts.run(layouts.cases(), copy_gbps, progress)
        kind = "layouts"
    elif args.variants:
        from gint.bench import variants

        report["variants"] = variants.run()
        kind = "variants"
    elif args.latency:
        from gint.bench import latency

        report["latency"] = latency.run(cold=not args.no_cold_build)
        kind = "latency"
    elif args.reductions:
        report["copy_GBps"] = copy_gbps = suite.copy_bandwidth()
        report["reductions"] = rows.run(rows.cases(False), copy_gbps, progress)
        kind = "reductions"
    elif args.core:
        report["launch"] = core.launch_overhead()
        report["bandwidth_f32"] = core.bandwidth(1 << 26, torch.float32)
        report["bandwidth_bf16"] = core.bandwidth(1 << 26, torch.bfloat16)
        kind = "core"
    else:
        copy_gbps = suite.copy_bandwidth()
        report["copy_GBps"] = copy_gbps
        report["kernel"] = kernel_figures()
        report["launch"] = core.launch_overhead()
        report["small_calls"] = suite.small_calls()
        report["compile_latency"] = suite.compile_latency()
        report["streaming"] = suite.run_streaming(suite.streaming_cases(args.quick), copy_gbps, progress)
        report["reductions"] = rows.run(rows.cases(args.quick), copy_gbps, progress)
        kind = "quick" if args.quick else "suite"
    stem = f"bench-{kind}{'-rows' if args.multi_row_tiles else ''}-{report['environment']['date'][:10]}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    if report.get("reductions"):
        from gint.bench import plots

        env = report["environment"]
        title = f"gint on {env['device']} ({env['date'][:10]}, torch {env['torch']})"
        plots.reductions(report["reductions"], title, out / f"{stem}-reductions.png")
    if report.get("streaming"):
        from gint.bench import plots

        env = report["environment"]
        title = f"gint on {env['device']} ({env['date'][:10]}, torch {env['torch']})"
        plots.bandwidth_vs_size(report["streaming"], title, out / f"{stem}-bandwidth.png")
        plots.speedups(report["streaming"], title, out / f"{stem}-speedup.png")
    print(summary(report))
    print(f"wrote {out / stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
