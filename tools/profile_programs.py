"""Run a few bytecode programs once each (after warm-up) so that ncu can profile the
interpreter on them: ``ncu -k regex:gint python tools/profile_programs.py``.
Also prints their device time and fraction of torch's copy bandwidth."""

import torch

from gint.bench.timing import device_time_us
from gint.bench.variants import _cases
from gint.host.executor import prepare

numel = 1 << 24
cases = _cases(numel)
src = torch.randn(numel, device="cuda")
dst = torch.empty_like(src)
copy_gbps = 8 * numel / device_time_us(lambda: dst.copy_(src)) / 1e3
for name, (program, tensors, bytes_per_element) in cases.items():
    executable = prepare(program.program)
    layout = executable.plan(tensors)
    t = device_time_us(lambda: executable.launch_planned(layout, tensors))
    print(f"{name:12s} {t:8.1f} us  {bytes_per_element * numel / t / 1e3 / copy_gbps:.3f} of copy", flush=True)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStart()
for name, (program, tensors, _) in cases.items():
    executable = prepare(program.program)
    executable.launch(executable.plan(tensors), tensors)
torch.cuda.synchronize()
torch.cuda.cudart().cudaProfilerStop()
