"""Row programs with and without hoisted loads in their chunk loops (one run, one GPU).

``python tools/row_hoisting.py``: times rmsnorm, softmax and layer_norm (8192 x 4096,
float32 and bfloat16) through gint with ``stackcode.HOIST_LOADS_IN_LOOPS`` off and on,
and prints gint's time per case for each (the decision recorded in reports/perf-notes.md).
"""

import torch

from gint.bench import rows
from gint.bench.suite import copy_bandwidth
from gint.conductor import register_backend
from gint.conductor.compiler import GintCompiler
from gint.host import stackcode


def main() -> None:
    register_backend()
    copy = copy_bandwidth()
    cases = [c for c in rows.cases(quick=True)]
    results = {}
    for hoist in (False, True, False):
        stackcode.HOIST_LOADS_IN_LOOPS = hoist
        GintCompiler._programs.clear()
        for row in rows.run(cases, copy, lambda items: items):
            results.setdefault(row["case"], []).append((hoist, row["gint_us"], row["gint_bw_fraction"]))
    print(f"copy {copy:.0f} GB/s")
    for case, runs in results.items():
        print(f"{case:<18}", "  ".join(f"hoist={h!s:<5} {us:8.1f} us ({frac:.3f} of copy)" for h, us, frac in runs))


if __name__ == "__main__":
    main()
