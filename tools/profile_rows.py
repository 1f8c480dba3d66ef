"""Run gint's rms_norm and softmax row programs (8192 x 4096 float32) and a streaming
chain (4 inputs, 8 ops, 2^24 float32) once each, after warm-up, between
cudaProfilerStart/Stop, so that ncu profiles just them:

    ncu --profile-from-start off -k regex:gint --section SpeedOfLight \
        --section SchedulerStats --section WarpStateStats python tools/profile_rows.py
"""

import torch
import torch.nn.functional as F

from gint.bench.suite import chain
from gint.conductor import register_backend


def main() -> None:
    register_backend()
    x = torch.randn(8192, 4096, device="cuda")
    w = torch.randn(4096, device="cuda")
    streams = [torch.randn(1 << 24, device="cuda") for _ in range(4)]
    chain8 = torch.compile(chain(4, 8), backend="gint", options={"eager_when_faster": False})
    cases = {
        "rms_norm": (torch.compile(lambda x, w: F.rms_norm(x, (4096,), w, 1e-6), backend="gint", options={"eager_when_faster": False}), (x, w)),
        "softmax": (torch.compile(lambda x, w: torch.softmax(x, -1), backend="gint", options={"eager_when_faster": False}), (x, w)),
        "chain_4in_8ops": (chain8, streams),
    }
    for fn, args in cases.values():
        fn(*args)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for fn, args in cases.values():
        fn(*args)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()
    print("profiled:", ", ".join(cases))


if __name__ == "__main__":
    main()
