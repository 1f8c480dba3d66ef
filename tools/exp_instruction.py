"""Programs with exp and sigmoid as plain instructions (EXP; sigmoid expanded into NEG,
EXP, ADDI, RDIVI) vs the same programs on PARK / MATH / UNPARK (one run, one GPU, the
same kernel: it has both).

``python tools/exp_instruction.py``: times softmax, log_softmax, a pointwise chain with two
exponentials and a SiLU-gated product (8192 x 4096, float32 and bfloat16) through gint with
``isa.DIRECT_FUNCTIONS`` and ``expr.EXPANSIONS`` as shipped and emptied, and prints gint's
time per case for each (the decisions recorded in reports/perf-notes.md).
"""

import torch

from gint import isa
from gint.bench import rows
from gint.bench.suite import copy_bandwidth
from gint.conductor import register_backend
from gint.conductor.compiler import GintCompiler
from gint.host import expr


def log_softmax(x, w):
    return torch.log_softmax(x, -1)


def exp_chain(x, w):
    return torch.exp(x) * w + torch.exp(-x)


def silu_gate(x, w):
    return torch.nn.functional.silu(x) * (x * w)


def main() -> None:
    register_backend()
    copy = copy_bandwidth()
    cases = []
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for fn in (rows.softmax, log_softmax, exp_chain, silu_gate):
            cases.append(rows.RowCase(f"{fn.__name__}_{tag}", fn, dtype, "full"))
    shipped, expansions = dict(isa.DIRECT_FUNCTIONS), dict(expr.EXPANSIONS)
    results = {}
    for direct in (True, False, True):
        isa.DIRECT_FUNCTIONS.clear()
        isa.DIRECT_FUNCTIONS.update(shipped if direct else {})
        expr.EXPANSIONS.clear()
        expr.EXPANSIONS.update(expansions if direct else {})
        GintCompiler._programs.clear()
        for row in rows.run(cases, copy, lambda items: items):
            results.setdefault(row["case"], []).append(
                (direct, row["gint_us"], row["gint_bw_fraction"], row["inductor_us"])
            )
    isa.DIRECT_FUNCTIONS.update(shipped)
    expr.EXPANSIONS.update(expansions)
    print(f"copy {copy:.0f} GB/s")
    for case, runs in results.items():
        cells = [f"direct={d!s:<5} {us:8.1f} us ({frac:.3f} of copy, Inductor {ind:.1f})" for d, us, frac, ind in runs]
        print(f"{case:<18}", "  ".join(cells))


if __name__ == "__main__":
    main()
