"""PNG plots of a benchmark report: bandwidth fraction vs size, speedups per case."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def bandwidth_vs_size(rows: list[dict], title: str, path: Path) -> None:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        shape = row["case"].rsplit("_", 2)[0]
        dtype = "bf16" if "bfloat16" in row["dtype"] else "f32"
        series[f"gint {shape} {dtype}"].append((row["numel"], row["gint_bw_fraction"]))
        series[f"inductor {shape} {dtype}"].append((row["numel"], row["inductor_bw_fraction"]))
    fig, ax = plt.subplots(figsize=(10, 6))
    for label, points in sorted(series.items()):
        points.sort()
        style = "-o" if label.startswith("gint") else ":x"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    ax.set_xscale("log", base=2)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("elements per tensor")
    ax.set_ylabel("achieved / device copy bandwidth")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def speedups(rows: list[dict], title: str, path: Path) -> None:
    names = [row["case"] for row in rows]
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.35), 6))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [row["speedup_vs_eager"] for row in rows], 0.4, label="gint speedup vs eager")
    ax.bar([x + 0.2 for x in xs], [1 / row["gint_vs_inductor"] for row in rows], 0.4, label="gint speedup vs Inductor")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=75, ha="right", fontsize=6)
    ax.set_ylabel("speedup (>1: gint faster)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reductions(rows: list[dict], title: str, path: Path) -> None:
    """Row and column reductions: achieved fraction of copy bandwidth, gint and Inductor."""
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.6), 5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [row["gint_bw_fraction"] for row in rows], 0.4, label="gint")
    ax.bar([x + 0.2 for x in xs], [row["inductor_bw_fraction"] for row in rows], 0.4, label="Inductor")
    ax.axhline(0.9, color="grey", lw=0.8, ls="--", label="goal 0.9")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([row["case"] for row in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("achieved / device copy bandwidth")
    ax.set_title(title + " - reductions, 8192 x 4096")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


MODEL_MODES = (("inference_bf16", "bf16"), ("inference_fp32", "fp32"), ("training_fp32", "train fp32"))
MODEL_WAYS = (("gint_ms", "gint"), ("gint_kernel_ms", "gint, every subgraph in gint"),
              ("graph_eager_ms", "gint's graph, every subgraph eager"), ("inductor_ms", "Inductor"))


def models(results: dict, title: str, path: Path) -> None:
    """Per model and mode: speed relative to eager (eager's time / each way's), one bar per
    way that the report holds (>1: faster than eager)."""
    labels, bars = [], defaultdict(list)
    for name, entry in results.items():
        for mode, tag in MODEL_MODES:
            row = entry.get(mode) or {}
            if "eager_ms" not in row:
                continue
            labels.append(f"{name} {tag}")
            for key, way in MODEL_WAYS:
                bars[way].append(row["eager_ms"] / row[key] if row.get(key) else 0.0)
    ways = [way for _, way in MODEL_WAYS if any(bars[way])]
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.9), 5))
    width = 0.8 / max(1, len(ways))
    for k, way in enumerate(ways):
        ax.bar([x + (k - (len(ways) - 1) / 2) * width for x in range(len(labels))], bars[way], width, label=way)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(list(range(len(labels))))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("speed vs eager (eager time / time; >1 faster)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
