"""Row and column reductions: rmsnorm, softmax, layer_norm and plain sums/maxima on
8192 x 4096, gint vs eager vs Inductor vs the device copy (issue 6's second goal).

Each case is checked against eager PyTorch first; times are CUDA-event medians over
rotating input sets (each set is larger than L2). ``bytes_moved`` counts one read of
every input and one write of every output, as the bandwidth goal does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from gint.bench.suite import compare

ROWS, COLS = 8192, 4096


def rms_norm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-6)


def softmax(x, w):
    return torch.softmax(x, -1)


def layer_norm(x, w):
    return F.layer_norm(x, (x.shape[-1],), w, w * 0.5)


def row_sum(x, w):
    return x.sum(-1)


def row_amax(x, w):
    return x.amax(-1)


def column_sum(x, w):
    return x.sum(0)


def column_amax(x, w):
    return x.amax(0)


@dataclass
class RowCase:
    name: str
    fn: Callable
    dtype: torch.dtype
    output: str  # "full" (one value per element), "row" or "column" (one per row / column)

    def bytes_moved(self) -> int:
        size = torch.empty((), dtype=self.dtype).element_size()
        out = {"full": ROWS * COLS, "row": ROWS, "column": COLS}[self.output]
        return (ROWS * COLS + out) * size


def cases(quick: bool) -> list[RowCase]:
    found = []
    for dtype in (torch.float32, torch.bfloat16):
        tag = "f32" if dtype == torch.float32 else "bf16"
        for fn in (rms_norm, softmax, layer_norm):
            found.append(RowCase(f"{fn.__name__}_{tag}", fn, dtype, "full"))
        if dtype == torch.float32 and not quick:
            found += [
                RowCase(f"row_sum_{tag}", row_sum, dtype, "row"),
                RowCase(f"row_amax_{tag}", row_amax, dtype, "row"),
                RowCase(f"column_sum_{tag}", column_sum, dtype, "column"),
                RowCase(f"column_amax_{tag}", column_amax, dtype, "column"),
            ]
    return found


def input_sets(case: RowCase, count: int = 3) -> list[list[torch.Tensor]]:
    """``count`` sets of (x, w) for ``case``: random, never zeros, each larger than L2."""
    return [
        [torch.randn(ROWS, COLS, device="cuda").to(case.dtype), torch.randn(COLS, device="cuda").to(case.dtype)]
        for _ in range(count)
    ]


def run(case_list: list[RowCase], copy_gbps: float, progress) -> list[dict]:
    import gint

    results = []
    for case in progress(case_list):
        torch._dynamo.reset()
        sets = input_sets(case)
        row = {"case": case.name, "shape": [ROWS, COLS], "dtype": str(case.dtype)}
        report = gint.explain(case.fn, *sets[0])
        row["gint_subgraphs"] = len(report.subgraphs)
        row["gint_coverage"] = report.coverage
        row.update(compare(case.fn, sets, case.dtype, case.bytes_moved(), copy_gbps))
        results.append(row)
    return results
