"""Programs with the EXP instruction vs the same programs with PARK / MATH exp / UNPARK
(one run, one GPU, the same kernel: it has both).

``python tools/exp_instruction.py``: times softmax, log_softmax and a pointwise chain with
two exponentials (8192 x 4096, float32 and bfloat16) through gint with
``isa.DIRECT_FUNCTIONS`` as shipped and emptied, and prints gint's time per case for each
(the decision recorded in reports/perf-notes.md).
"""

import torch

from gint import isa
from gint.bench import rows
from gint.bench.suite import copy_bandwidth
from gint.conductor import register_backend
from gint.conductor.compiler import GintCompiler


def log_softmax(x, w):
    return torch.log_softmax(x, -1)


def exp_chain(x, w):
    return torch.exp(x) * w + torch.exp(-x)


def main() -> None:
    register_backend()
    copy = copy_bandwidth()
    cases = []
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for fn in (rows.softmax, log_softmax, exp_chain):
            cases.append(rows.RowCase(f"{fn.__name__}_{tag}", fn, dtype, "full"))
    shipped = dict(isa.DIRECT_FUNCTIONS)
    results = {}
    for direct in (True, False, True):
        isa.DIRECT_FUNCTIONS.clear()
        isa.DIRECT_FUNCTIONS.update(shipped if direct else {})
        GintCompiler._programs.clear()
        for row in rows.run(cases, copy, lambda items: items):
            results.setdefault(row["case"], []).append(
                (direct, row["gint_us"], row["gint_bw_fraction"], row["inductor_us"])
            )
    isa.DIRECT_FUNCTIONS.update(shipped)
    print(f"copy {copy:.0f} GB/s")
    for case, runs in results.items():
        cells = [
            f"exp_instr={d!s:<5} {us:8.1f} us ({frac:.3f} of copy, Inductor {ind:.1f})" for d, us, frac, ind in runs
        ]
        print(f"{case:<18}", "  ".join(cells))


if __name__ == "__main__":
    main()
