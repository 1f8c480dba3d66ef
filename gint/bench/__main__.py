"""``python -m gint.bench``: gint's figures on the current GPU.

``--core``: launch overhead and copy/add bandwidth versus PyTorch's device copy.
Writes ``bench-core-<date>.json`` (device, versions, date, every figure) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path


def environment() -> dict:
    import numba
    import numba_cuda
    import numpy
    import torch

    props = torch.cuda.get_device_properties(0)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": props.name,
        "sm_count": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numba": numba.__version__,
        "numba_cuda": numba_cuda.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.bench", description=__doc__)
    parser.add_argument("--core", action="store_true", help="launch overhead and copy/add bandwidth")
    parser.add_argument("--variants", action="store_true", help="kernel config / block size ablation")
    parser.add_argument("--out", default="reports", help="folder for the JSON report")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() or os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("gint.bench needs a CUDA GPU (and NUMBA_ENABLE_CUDASIM unset)", file=sys.stderr)
        return 2
    from gint.bench import core

    report = {"environment": environment()}
    if args.core:
        report["launch"] = core.launch_overhead()
        report["bandwidth_f32"] = core.bandwidth(1 << 26, torch.float32)
        report["bandwidth_bf16"] = core.bandwidth(1 << 26, torch.bfloat16)
    if args.variants:
        from gint.bench import variants

        report["variants"] = variants.run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    day = report["environment"]["date"][:10]
    path = out / f"bench-{'core' if args.core else 'variants'}-{day}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
