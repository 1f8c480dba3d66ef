"""Run gint's rms_norm and softmax row programs (8192 x 4096 float32) once each, after
warm-up, between cudaProfilerStart/Stop, so that ncu profiles just them:

    ncu --profile-from-start off -k regex:gint --section SpeedOfLight \
        --section SchedulerStats --section WarpStateStats python tools/profile_rows.py
"""

import torch
import torch.nn.functional as F

from gint.conductor import register_backend


def main() -> None:
    register_backend()
    x = torch.randn(8192, 4096, device="cuda")
    w = torch.randn(4096, device="cuda")
    cases = {
        "rms_norm": torch.compile(lambda x, w: F.rms_norm(x, (4096,), w, 1e-6), backend="gint"),
        "softmax": torch.compile(lambda x, w: torch.softmax(x, -1), backend="gint"),
    }
    for fn in cases.values():
        fn(x, w)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for name, fn in cases.items():
        fn(x, w)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()
    print("profiled:", ", ".join(cases))


if __name__ == "__main__":
    main()
