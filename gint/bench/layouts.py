"""The layout bench: one pointwise chain over the layouts real models hand gint.

Most cases are the same chain ``(x * y + x * 0.5).relu() - y`` on bf16 inputs, over
the layouts transformers produce: contiguous, the head-major view of a (batch, seq,
heads, dim) tensor (also in float32, and as a lone scale and a lone copy), rows of 64
against a broadcast table, a per-channel broadcast over rows of 28 x 28, the two halves
of the last dim (rotate_half's slices), rows of 70 and of 200 inside wider rows; plus
the rotary embedding itself, ``q * cos + rotate_half(q) * sin``. Each is
checked against eager and timed against Inductor, eager and the device copy, and
carries the layout planner's own figure: the share of each tile's elements that
are domain elements (1.0: every thread has work), for the kernel configuration in
use (``gint.host.launcher.use_launcher`` swaps it). gint runs with
``eager_when_faster`` off here (``suite.compare``): this measures the kernel.

``bytes_moved`` counts each input's distinct elements once (a broadcast table is
read once) and every output once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from gint.bench.suite import compare

BATCH, HEADS, SEQ, DIM = 8, 16, 512, 64


def chain(x, y):
    return (x * y + x * 0.5).relu() - y


def scale(x):
    return x * 0.125


def clone(x):
    return x.contiguous()


def rotate_half(q):
    half = q.shape[-1] // 2
    return torch.cat((-q[..., half:], q[..., :half]), dim=-1)


def rotary(q, cos, sin):
    return q * cos + rotate_half(q) * sin


def head_major(*shape_bshd) -> torch.Tensor:
    """A (batch, heads, seq, dim) view of a (batch, seq, heads, dim) tensor."""
    return torch.randn(*shape_bshd, device="cuda").to(torch.bfloat16).transpose(1, 2)


def _bf16(*shape) -> torch.Tensor:
    return torch.randn(*shape, device="cuda").to(torch.bfloat16)


@dataclass
class LayoutCase:
    name: str
    fn: Callable
    make: Callable[[], list[torch.Tensor]]  # one input set
    description: str


def cases() -> list[LayoutCase]:
    b, h, s, d = BATCH, HEADS, SEQ, DIM
    return [
        LayoutCase("contiguous", chain, lambda: [_bf16(b, h, s, d), _bf16(b, h, s, d)], f"({b},{h},{s},{d}) dense"),
        LayoutCase(
            "head_transposed",
            chain,
            lambda: [head_major(b, s, h, d), head_major(b, s, h, d)],
            f"({b},{h},{s},{d}) strides ({s * h * d},{d},{h * d},1)",
        ),
        LayoutCase(
            "innermost_64_table",
            chain,
            lambda: [_bf16(b, h, s, d), _bf16(1, 1, s, d)],
            f"({b},{h},{s},{d}) against a (1,1,{s},{d}) table",
        ),
        LayoutCase(
            "channel_broadcast",
            chain,
            lambda: [_bf16(32, 256, 28, 28), _bf16(1, 256, 1, 1)],
            "(32,256,28,28) against a (1,256,1,1) per-channel table",
        ),
        LayoutCase(
            "sliced_half",
            chain,
            lambda: list(_bf16(b, h, s, 2 * d).split(d, dim=-1)),
            f"the two halves of a ({b},{h},{s},{2 * d}) tensor's last dim",
        ),
        LayoutCase(
            "head_transposed_scale", scale, lambda: [head_major(b, s, h, d)], f"x * 0.125, x ({b},{h},{s},{d}) head-major"
        ),
        LayoutCase(
            "head_transposed_clone", clone, lambda: [head_major(b, s, h, d)], f"x.contiguous(), x ({b},{h},{s},{d}) head-major"
        ),
        LayoutCase(
            "head_transposed_f32",
            chain,
            lambda: [torch.randn(b, s, h, d, device="cuda").transpose(1, 2) for _ in range(2)],
            f"float32, ({b},{h},{s},{d}) head-major",
        ),
        LayoutCase(
            "rows_of_70",
            chain,
            lambda: [_bf16(16384, 128)[:, :70], _bf16(16384, 128)[:, :70]],
            "rows of 70, 128 apart (16384 rows)",
        ),
        LayoutCase(
            "rows_of_200",
            chain,
            lambda: [_bf16(8192, 256)[:, :200], _bf16(8192, 256)[:, :200]],
            "rows of 200, 256 apart (8192 rows)",
        ),
        LayoutCase(
            "rotary_head_transposed",
            rotary,
            lambda: [head_major(b, s, h, d), _bf16(1, 1, s, d), _bf16(1, 1, s, d)],
            f"q*cos + rotate_half(q)*sin, q ({b},{h},{s},{d}) head-major, cos/sin (1,1,{s},{d})",
        ),
    ]


def distinct_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements a view reaches (stride-0 dims count once)."""
    return math.prod(n for n, st in zip(t.shape, t.stride()) if st != 0) * t.element_size()


def planner_figures(fn: Callable, inputs: list[torch.Tensor], tile_len: int, multi_row: bool) -> dict:
    """The backend's subgraphs for ``fn`` and, per subgraph, the share of tile elements
    with work, as the planner laid them out."""
    import gint

    report = gint.explain(fn, *inputs)
    busy = []
    for sub in report.subgraphs:
        for plan in sub.callable._plans.values():
            if isinstance(plan, tuple):
                busy.append(round(plan[-1].busy_fraction(tile_len, multi_row), 3))
    return {"gint_subgraphs": len(report.subgraphs), "gint_coverage": report.coverage, "busy": busy}


def run(case_list: list[LayoutCase], copy_gbps: float, progress) -> list[dict]:
    from gint.host.launcher import launcher_for

    launcher = launcher_for(0)
    tile_len, multi_row = launcher.tile_len, launcher.config.multi_row_tiles
    results = []
    for case in progress(case_list):
        torch._dynamo.reset()
        sets = [case.make() for _ in range(4)]
        want = case.fn(*sets[0])
        moved = sum(distinct_bytes(t) for t in sets[0]) + want.numel() * want.element_size()
        row = {
            "case": case.name,
            "layout": case.description,
            "shapes": [list(t.shape) for t in sets[0]],
            "strides": [list(t.stride()) for t in sets[0]],
            "bytes": moved,
        }
        row.update(planner_figures(case.fn, sets[0], tile_len, multi_row))
        torch._dynamo.reset()
        row.update(compare(case.fn, sets, sets[0][0].dtype, moved, copy_gbps))
        results.append(row)
    contiguous = next((r for r in results if r["case"] == "contiguous"), None)
    for r in results:
        if contiguous:
            r["vs_contiguous_bw"] = round(r["gint_bw_fraction"] / contiguous["gint_bw_fraction"], 3)
    return results
